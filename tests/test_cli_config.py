"""Config reaches the program as the Pulumi CLI passes it, and the program reads it that way.

The contract (harness/cliconfig.py cites each step in pulumi/pulumi and gopkg.in/yaml.v3): the
CLI reads Pulumi.<stack>.yaml with yaml.v3 (YAML 1.2 rules, not PyYAML's 1.1), then passes a
string raw and every other value as JSON text in PULUMI_CONFIG, which the language host's shim
hands to the SDK's set_all_config.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from harness.cliconfig import StackFileError, load_stack_file, wire_config
from harness.engine import PROJECT, PROJECT_ROOT, ProgramRun
from harness.tokens import CONFIGMAP, VM
from settings import TOP_LEVEL_KEYS
from tests.test_config_errors import assert_clean_failure

StackFile = Callable[..., ProgramRun]
COMMITTED = (PROJECT_ROOT / "Pulumi.homelab.yaml").read_text()


def committed_with(old: str, new: str) -> str:
    """The committed stack file with one piece of text replaced, as a user would edit it."""
    assert COMMITTED.count(old) == 1, old
    return COMMITTED.replace(old, new)


def wire(text: str) -> dict[str, str]:
    return wire_config(load_stack_file(text, PROJECT), PROJECT)


def test_top_level_values_are_passed_raw_if_strings_else_as_json() -> None:
    # object.go MarshalString / plaintext.go marshalText: strings raw, the rest Go JSON text;
    # loaders.go stackConfigNamespacedWithProject: an unprefixed key is the project's.
    assert wire(
        "config:\n"
        "  homelab:secretsFile: secrets.enc.yaml\n"
        "  homelab:quoted: 'true'\n"
        "  homelab:flag: true\n"
        "  homelab:count: 42\n"
        "  homelab:ratio: 1.0\n"
        "  homelab:empty:\n"
        "  unprefixed: text\n"
        "  homelab:map: {b: 1, a: [x, 2.5, null, '<&>']}\n"
    ) == {
        "homelab:secretsFile": "secrets.enc.yaml",
        "homelab:quoted": "true",
        "homelab:flag": "true",
        "homelab:count": "42",
        "homelab:ratio": "1",
        "homelab:empty": "null",
        "homelab:unprefixed": "text",
        "homelab:map": '{"a":["x",2.5,null,"\\u003c\\u0026\\u003e"],"b":1}',
    }


# (unquoted text, what the CLI passes on for it): yaml.v3 resolve.go, then object.go. PyYAML
# (YAML 1.1), the harness's old reader, took yes/on/Off as booleans, 10:20:30 as 37230 and kept
# 0o755, 1e3 and 08 as text.
SCALARS: list[tuple[str, Any]] = [
    ("yes", "yes"),
    ("on", "on"),
    ("Off", "Off"),
    ("0755", 493),
    ("0o755", 493),
    ("1_000", 1000),
    (".5", 0.5),
    ("1e3", 1000),
    ("1.0", 1),
    ("08", 8),
    ("0x1F", 31),
    ("~", None),
    ("10:20:30", "10:20:30"),
    ("2024-01-02", "2024-01-02 00:00:00 +0000 UTC"),
    ("2024-02-30", "2024-02-30"),
    ("True", True),
]


@pytest.mark.parametrize(("text", "cli"), SCALARS, ids=[s[0] for s in SCALARS])
def test_nested_scalars_are_typed_by_the_clis_yaml_reader(text: str, cli: Any) -> None:
    passed = json.loads(
        wire(f"config:\n  homelab:section:\n    value: {text}\n")["homelab:section"]
    )
    assert passed["value"] == cli and type(passed["value"]) is type(cli)


@pytest.mark.parametrize(
    ("text", "line"),
    [("    - cores: 1\n      cores: 2\n", 3), ("    - {cores: 1, cores: 2}\n", 3)],
    ids=["block", "flow"],
)
def test_a_duplicate_key_is_refused_as_the_cli_does(text: str, line: int) -> None:
    # yaml.v3 decode.go mapping(): "mapping key … already defined at line …".
    with pytest.raises(StackFileError, match=f"mapping key 'cores' already defined at line {line}"):
        load_stack_file(f"config:\n  homelab:nodes:\n{text}", PROJECT)


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "update"])
def test_the_committed_stack_file_evaluates_as_the_cli_passes_it(
    stack_file: StackFile, preview: bool
) -> None:
    # homelab:secretsFile is a plain string: passed raw, not JSON, so get_object fails on it.
    run = stack_file(COMMITTED, preview=preview)
    assert len(run.of_type(VM)) == 1
    assert run.one(CONFIGMAP, "cluster-settings").inputs["data"]["CLUSTER_DOMAIN"] == "example.com"


TYPOS = [("featuers", "features"), ("clusterSetting", "clusterSettings"), ("netwrok", "network")]


@pytest.mark.parametrize(("typo", "meant"), TYPOS, ids=[t[0] for t in TYPOS])
def test_a_misspelt_top_level_key_is_rejected_with_the_known_keys(
    stack_file: StackFile, typo: str, meant: str
) -> None:
    run = stack_file(
        committed_with(f"  homelab:{meant}:\n", f"  homelab:{typo}:\n"), expect_error=True
    )
    known = ", ".join(f"homelab:{key}" for key in sorted(TOP_LEVEL_KEYS))
    assert_clean_failure(
        run,
        [
            f"homelab:{typo} = '{{",
            "is not a known setting",
            f"did you mean homelab:{meant}?",
            known,
        ],
    )


@pytest.mark.parametrize("word", ["yes", "on"])
def test_a_yaml_11_boolean_word_is_rejected_not_guessed(stack_file: StackFile, word: str) -> None:
    run = stack_file(
        committed_with("    secureBoot: true\n", f"    secureBoot: {word}\n"), expect_error=True
    )
    assert_clean_failure(
        run,
        [
            f"homelab:features.secureBoot = '{word}'",
            "only true and false are booleans",
            "Fix: write true or false",
        ],
    )


SETTINGS_ANCHOR = "    TIMEZONE: Etc/UTC\n"


@pytest.mark.parametrize(
    ("value", "shown", "why"),
    [
        ("0755", "493", "0755 and 0o755 read as 493"),
        ("1.10", "1.1", "took it as a number"),
        ("2024-01-02", "'2024-01-02 00:00:00 +0000 UTC'", "took it as a date"),
    ],
    ids=["octal", "version", "date"],
)
def test_an_unquoted_cluster_setting_the_reader_retypes_is_rejected(
    stack_file: StackFile, value: str, shown: str, why: str
) -> None:
    text = committed_with(SETTINGS_ANCHOR, f"{SETTINGS_ANCHOR}    NFS_MODE: {value}\n")
    run = stack_file(text, expect_error=True)
    assert_clean_failure(
        run,
        [
            f"homelab:clusterSettings.NFS_MODE = {shown}",
            why,
            'Fix: write the value in quotes as you mean it, e.g. NFS_MODE: "0755"',
        ],
    )


@pytest.mark.parametrize(("written", "text"), [('"0755"', "0755"), ("yes please", "yes please")])
def test_a_cluster_setting_written_as_text_keeps_its_text(
    stack_file: StackFile, written: str, text: str
) -> None:
    run = stack_file(committed_with(SETTINGS_ANCHOR, f"{SETTINGS_ANCHOR}    NFS_MODE: {written}\n"))
    assert run.one(CONFIGMAP, "cluster-settings").inputs["data"]["NFS_MODE"] == text


def test_a_string_where_a_mapping_belongs_is_rejected(stack_file: StackFile) -> None:
    start = COMMITTED.index("  homelab:nodes:\n")
    end = COMMITTED.index("  homelab:gitops:\n")
    text = COMMITTED[:start] + "  homelab:nodes: talos-cp-1\n" + COMMITTED[end:]
    run = stack_file(text, expect_error=True)
    assert_clean_failure(run, ["homelab:nodes = 'talos-cp-1'", "must be a YAML mapping or list"])
