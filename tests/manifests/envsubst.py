"""Flux's post-build substitution, emulated for tests: text in, text out, then parsed as YAML.

Semantics from fluxcd/pkg (the code kustomize-controller runs):
- kustomize/kustomize_varsub.go: variables come from the substituteFrom ConfigMaps/Secrets and
  the inline `substitute` map, each value with every "\\n" removed; the object is re-serialised
  by kustomize, substituted as text (non-strict: an unset variable is ""), then parsed again as
  YAML (sigs.k8s.io/yaml, YAML 1.1 like PyYAML: `yes`/`on` are booleans, `0755` an octal int).
- envsubst/ (forked from drone/envsubst): `$$` is one literal `$` (parse/scan.go scanEscaped);
  `${VAR}` is the value; every default operator (`:=`, `:-`, `=`, `-` …) goes through toDefault
  (funcs.go), which takes the default when the value is empty.
Anything else (`${#VAR}`, `${VAR/a/b}` …) is refused here rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

TOKEN = re.compile(
    r"\$\$|\$\{(?P<name>[_a-zA-Z][_a-zA-Z0-9]*)(?:(?P<op>:?[-=+?])(?P<default>[^}$]*))?\}"
)
DEFAULT_OPERATORS = frozenset({":=", ":-", "=", "-"})


def substitute(text: str, variables: Mapping[str, str]) -> str:
    values = {name: value.replace("\n", "") for name, value in variables.items()}

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator = match.group("name"), match.group("op")
        value = values.get(name, "")
        if operator is None:
            return value
        if operator not in DEFAULT_OPERATORS:
            raise NotImplementedError(f"envsubst operator {operator} is not emulated")
        return value or match.group("default")

    out, position = [], 0
    for match in TOKEN.finditer(text):
        out += [_plain(text[position : match.start()]), replace(match)]
        position = match.end()
    return "".join([*out, _plain(text[position:])])


def _plain(text: str) -> str:
    if "${" in text:
        raise NotImplementedError(f"substitution not emulated: {text[text.index('${') :][:40]}")
    return text
