"""What Flux will substitute into kubernetes/, checked before any resource is registered.

Flux's post-build substitution (fluxcd/pkg kustomize/kustomize_varsub.go, envsubst forked from
drone/envsubst) turns a `${VAR}` whose variable is unset into an empty string without a word, and
pastes each value into the YAML as text before parsing it again. So: every `${VAR}` without a
default must have a value (in homelab:clusterSettings, the derived settings, or clusterSecrets),
no value may be a placeholder from secrets.example.yaml, and no value may hold what a quoted YAML
scalar cannot carry verbatim. Pure: reads kubernetes/ and the mappings it is given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.layers import MANIFEST_ROOT, QUOTE_VARIABLE
from settings import NAMESPACE, ConfigError
from settings.secrets import REDACTED

MANIFESTS = Path(__file__).resolve().parent.parent / MANIFEST_ROOT
SETTINGS_KEY = f"{NAMESPACE}:clusterSettings"
SECRETS_KEY = "clusterSecrets"
# Objects carrying this annotation or label are not substituted (kustomize_varsub.go).
SUBSTITUTE_DISABLED = re.compile(r"kustomize\.toolkit\.fluxcd\.io/substitute:\s*[\"']?disabled")
# `${NAME` then an optional operator. envsubst's default-providing operators (isDefaultOp in
# fluxcd/pkg envsubst/template.go: - + = ? :- :+ := :?) tolerate an unset variable.
REFERENCE = re.compile(r"(\$+)\{([_a-zA-Z][_a-zA-Z0-9]*)(:?[-+=?])?")
# Flux drops "\n" from every value (LoadVariables); the rest would end or escape the quoted
# scalar `${quote}${VAR}${quote}` becomes, or are not kept as written.
UNSAFE = {'"': "a double quote", "\\": "a backslash", "\n": "a newline", "\r": "a carriage return"}
# The placeholders secrets.example.yaml ships with.
PLACEHOLDERS = frozenset({"replace-me"})


@dataclass(frozen=True)
class Reference:
    name: str
    file: str  # relative to the repository
    in_secret: bool  # the file holds a Secret: the value belongs in clusterSecrets


def required_variables(root: Path = MANIFESTS) -> dict[str, list[Reference]]:
    """Every variable referenced without a default, with where it is used."""
    found: dict[str, list[Reference]] = {}
    for path in sorted(root.rglob("*.y*ml")):
        text = path.read_text()
        if SUBSTITUTE_DISABLED.search(text):
            continue
        in_secret = re.search(r"(?m)^kind:\s*Secret\s*$", text) is not None
        for match in REFERENCE.finditer(text):
            dollars, name, operator = match.groups()
            # `$$` is envsubst's escape for one literal `$`: an even run escapes the brace.
            if len(dollars) % 2 == 0 or operator or name == QUOTE_VARIABLE:
                continue
            reference = Reference(name, str(path.relative_to(root.parent)), in_secret)
            found.setdefault(name, []).append(reference)
    return found


def check_substitutions(
    cluster_settings: Mapping[str, str],
    decrypted_secrets: Mapping[str, Any],
    secrets_file: Path,
    root: Path = MANIFESTS,
) -> None:
    """Raise one ConfigError for the first missing, placeholder or unsafe value. Secret values
    are never part of a message."""
    raw = decrypted_secrets.get(SECRETS_KEY)
    cluster_secrets = raw if isinstance(raw, Mapping) else {}
    for name, value in cluster_settings.items():
        _check_safe(f"{SETTINGS_KEY}.{name}", str(value), shown=str(value))
    for name, value in cluster_secrets.items():
        key = f"{secrets_file}:{SECRETS_KEY}.{name}"
        if str(value).strip() in PLACEHOLDERS:
            placeholder = "is still the placeholder of secrets.example.yaml"
            raise ConfigError(key, REDACTED, placeholder, _edit(secrets_file))
        _check_safe(key, str(value), shown=REDACTED)
    for name, references in required_variables(root).items():
        if name in cluster_settings or name in cluster_secrets:
            continue
        files = ", ".join(sorted({r.file for r in references}))
        if all(r.in_secret for r in references):
            raise ConfigError(
                f"{secrets_file}:{SECRETS_KEY}.{name}",
                None,
                f"is missing, but {files} substitutes ${{{name}}} (unset, Flux would write an "
                "empty string)",
                _edit(secrets_file),
            )
        raise ConfigError(
            f"{SETTINGS_KEY}.{name}",
            None,
            f"is missing, but {files} substitutes ${{{name}}} (unset, Flux would write an "
            "empty string)",
            f"add {name} under {SETTINGS_KEY} in Pulumi.<stack>.yaml",
        )


def _check_safe(key: str, value: str, shown: str) -> None:
    for character, what in UNSAFE.items():
        if character in value:
            raise ConfigError(
                key,
                shown,
                f"holds {what}, which Flux's text substitution cannot carry into the YAML as is",
                "choose a value without double quotes, backslashes or line breaks",
            )


def _edit(secrets_file: Path) -> str:
    return f"run `sops edit {secrets_file}` and set it as in secrets.example.yaml"
