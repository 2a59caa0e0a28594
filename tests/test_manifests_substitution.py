"""Flux post-build substitution: syntax, every variable provided, values kept exactly as given."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gitops.layers import QUOTE_VARIABLE
from gitops.substitutions import required_variables
from tests.manifests.detectors import bad_substitutions, variable_refs
from tests.manifests.envsubst import substitute
from tests.manifests.tree import (
    FLUX_VAR_NAME,
    LAYERS,
    OPT_IN_DIRS,
    ROOT,
    WHOLE_VAR_REF,
    build_text,
    declared_variables,
    ident,
    substitution_disabled,
    yaml_files,
)

# --------------------------------------------------------------------------------------------
# Variables, literals, secrets
# --------------------------------------------------------------------------------------------


def test_substitution_syntax_is_valid() -> None:
    """Flux substitutes every `${...}` of every object (comments included); one it cannot
    parse fails the whole layer. Files that need literal `${` must opt out with the annotation
    kustomize.toolkit.fluxcd.io/substitute: disabled (or escape as `$${`)."""
    bad = {
        str(p.relative_to(ROOT)): b
        for p in yaml_files()
        if not substitution_disabled(p) and (b := bad_substitutions(p.read_text()))
    }
    assert not bad, f"unparseable substitutions: {bad}"


def test_variables_are_provided() -> None:
    """Every ${VAR} without a default (as the program's own check finds them) is a key of
    cluster-settings (Pulumi.homelab.yaml homelab:clusterSettings, plus the derived ones) or of
    cluster-secrets (secrets.example.yaml clusterSecrets): the committed example deploys."""
    settings, secrets = declared_variables()
    bad_names = sorted(n for n in settings | secrets if not FLUX_VAR_NAME.match(n))
    assert not bad_names, f"not valid Flux variable names: {bad_names}"
    missing = {
        name: sorted({r.file for r in references})
        for name, references in required_variables().items()
        if name not in settings | secrets
    }
    assert not missing, f"variables without a source or default: {missing}"


# Values that YAML would retype or that break a plain scalar: each must arrive as written.
HOSTILE_VALUES = ["12345678", "yes", "*x", "@x", "a: b", "on", "0755", "#x", "- x", "null", " x "]


def _substituted_leaves(data: Any, variables: dict[str, str]) -> Any:
    """What a correct substitution gives: each string substituted on its own, never retyped."""
    if isinstance(data, dict):
        return {key: _substituted_leaves(value, variables) for key, value in data.items()}
    if isinstance(data, list):
        return [_substituted_leaves(value, variables) for value in data]
    if isinstance(data, str):
        return substitute(data, {**variables, QUOTE_VARIABLE: ""})
    return data


@pytest.mark.parametrize("value", HOSTILE_VALUES)
@pytest.mark.parametrize("layer", [*LAYERS, *OPT_IN_DIRS])
def test_values_arrive_exactly_as_given(layer: str, value: str) -> None:
    """Build the layer, substitute as Flux does (text, then YAML parsed again) with every variable
    set to a hostile value, and compare with substituting each string on its own: equal only if
    every substitution is quoted (`${quote}${VAR}${quote}`), so no value changes type or breaks
    the layer. Each Secret and ConfigMap value that is one variable holds exactly the value."""
    text = build_text(layer)
    variables = {name: value for name, _ in variable_refs(text)}
    flux = [doc for doc in yaml.safe_load_all(substitute(text, {**variables, QUOTE_VARIABLE: '"'}))]
    expected = [_substituted_leaves(doc, variables) for doc in yaml.safe_load_all(text)]
    assert flux == expected
    for source, result in zip(yaml.safe_load_all(text), flux, strict=True):
        if source["kind"] in ("Secret", "ConfigMap"):
            for field in ("data", "stringData"):
                for key, written in (source.get(field) or {}).items():
                    if WHOLE_VAR_REF.match(written) and ":=" not in written:
                        assert result[field][key] == value, (ident(source), key)


def test_the_emulator_follows_envsubst() -> None:
    variables = {"A": "1", "EMPTY": ""}
    assert substitute("$${A} ${A} ${B} ${EMPTY:=d} ${A:=d} $1 $$", variables) == "${A} 1  d 1 $1 $"
    assert substitute("x: ${A}", {"A": "a\nb"}) == "x: ab"
    with pytest.raises(NotImplementedError):
        substitute("${A/1/2}", variables)
