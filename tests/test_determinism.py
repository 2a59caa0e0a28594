"""The same config always registers the same resources, and changes stay where they belong.

Resources are compared in a canonical form: per URN, everything the engine receives (type, name,
parent, raw inputs with their secret markers, dependencies as sorted sets, ignore_changes,
retain_on_delete, provider). Mapping keys are sorted: the engine keeps inputs as a map and the
checkpoint stores them key-sorted, so key order never reaches a diff. Order inside lists and
strings is kept: that is where a timestamp, a random name, or a dict or set iteration order
would cause a diff on every `pulumi up`.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from harness.engine import PROJECT_ROOT, Program, ProgramRun, Registration
from harness.environment import committed_config, ha_config
from harness.tokens import APPLY, COMMAND, ISO, SECRETS, VM
from infra.vm import VM_IGNORED_CHANGES

Fingerprint = dict[str, Any]
# Type -> (its recorded ignore_changes, the inputs a Talos upgrade changes in it).
IGNORED_ON_UPGRADE: dict[str, tuple[list[str], set[str]]] = {
    VM: (VM_IGNORED_CHANGES, {"cdrom.fileId"}),
    SECRETS: (["talosVersion"], {"talosVersion"}),
}

# Evaluates a config (stdin) in a fresh interpreter and writes its fingerprint to argv[1].
FRESH_INTERPRETER = """
import json, pathlib, sys
from harness.engine import run_program
from tests.test_determinism import fingerprint
run = run_program(json.load(sys.stdin))
pathlib.Path(sys.argv[1]).write_text(json.dumps(fingerprint(run)))
"""


def canonical(registration: Registration, with_inputs: bool = True) -> str:
    record: dict[str, Any] = {
        "type": registration.type,
        "name": registration.name,
        "parent": registration.parent,
        "custom": registration.custom,
        "remote": registration.remote,
        "dependencies": sorted(registration.dependencies),
        "property_dependencies": {
            key: sorted(urns) for key, urns in registration.property_dependencies.items()
        },
        "ignore_changes": registration.ignore_changes,
        "retain_on_delete": registration.retain_on_delete,
        "provider": registration.provider,
    }
    if with_inputs:
        record["inputs"] = registration.raw_inputs
    return json.dumps(record, sort_keys=True)


def fingerprint(run: ProgramRun) -> Fingerprint:
    """Every registration by URN, and the invokes (sorted: their order varies with threads)."""
    return {
        "resources": {r.urn: canonical(r) for r in run.registrations},
        "invokes": sorted(
            json.dumps({"token": i.token, "args": i.args}, sort_keys=True) for i in run.invocations
        ),
    }


def assert_identical(first: Fingerprint, second: Fingerprint) -> None:
    assert sorted(first["resources"]) == sorted(second["resources"])
    differing = [
        urn for urn, text in first["resources"].items() if second["resources"][urn] != text
    ]
    assert differing == [], "\n".join(
        f"{urn}: {path}: {old!r} != {new!r}"
        for urn in differing
        for path, (old, new) in sorted(
            differences(
                json.loads(first["resources"][urn]), json.loads(second["resources"][urn])
            ).items()
        )
    )
    assert first["invokes"] == second["invokes"]


def reversed_mappings(value: Any) -> Any:
    """Every mapping's keys in reverse order; lists keep theirs (node order means something)."""
    if isinstance(value, dict):
        return {key: reversed_mappings(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_mappings(item) for item in value]
    return value


def differences(before: Any, after: Any, path: str = "") -> dict[str, tuple[Any, Any]]:
    """Every leaf that differs, by property path (Pulumi's syntax: a.b[0].c): (before, after)."""
    found: dict[str, tuple[Any, Any]] = {}
    if isinstance(before, dict) and isinstance(after, dict):
        for key in before.keys() | after.keys():
            inner = f"{path}.{key}" if path else key
            found.update(differences(before.get(key), after.get(key), inner))
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            found.update(differences(old, new, f"{path}[{index}]"))
    elif before != after:
        found[path] = (before, after)
    return found


def changed_paths(before: Any, after: Any) -> set[str]:
    return set(differences(before, after))


def ignored(path: str, ignore_changes: list[str]) -> bool:
    return any(path == p or path.startswith((f"{p}.", f"{p}[")) for p in ignore_changes)


def by_urn(run: ProgramRun) -> dict[str, Registration]:
    return {r.urn: r for r in run.registrations}


def test_two_evaluations_register_byte_identical_resources(program: Program) -> None:
    for config in (committed_config(), ha_config()):
        assert_identical(fingerprint(program(config)), fingerprint(program(config)))


def test_config_key_order_changes_nothing(program: Program) -> None:
    config = ha_config()
    reordered = reversed_mappings(config)
    assert json.dumps(reordered) != json.dumps(config)  # the reordering reaches the program
    assert_identical(fingerprint(program(config)), fingerprint(program(reordered)))


def test_another_hash_seed_changes_nothing(
    program: Program, secrets_file: Path, tmp_path: Path
) -> None:
    """Set order is only random across interpreters: compare two with fixed, different seeds."""
    config = {**ha_config(), "secretsFile": str(secrets_file)}
    outputs = [tmp_path / f"seed-{seed}.json" for seed in (1, 2)]
    # The fixtures put the real sops (PATH) and the age key in os.environ; children inherit them.
    children = [
        subprocess.Popen(
            [sys.executable, "-c", FRESH_INTERPRETER, str(out)],
            # In the test's directory, like the fixtures (no working copy's escrow files).
            cwd=secrets_file.parent,
            env={
                **os.environ,
                "PYTHONHASHSEED": out.stem.removeprefix("seed-"),
                "PYTHONPATH": str(PROJECT_ROOT),
            },
            stdin=subprocess.PIPE,
            text=True,
        )
        for out in outputs
    ]
    for child in children:
        child.communicate(json.dumps(config), timeout=120)
        assert child.returncode == 0
    first, second = (json.loads(out.read_text()) for out in outputs)
    assert_identical(first, second)
    assert_identical(first, fingerprint(program(ha_config())))


def test_a_talos_upgrade_changes_the_isos_and_the_install_image_only(program: Program) -> None:
    config = ha_config()
    upgraded = copy.deepcopy(config)
    upgraded["cluster"]["talosVersion"] = "v1.13.5"
    before, after = by_urn(program(config)), by_urn(program(upgraded))
    assert sorted(before) == sorted(after)
    for urn, old in before.items():
        assert canonical(old, with_inputs=False) == canonical(after[urn], with_inputs=False)

    changed = {
        urn: changed_paths(old.inputs, after[urn].inputs)
        for urn, old in before.items()
        if canonical(old) != canonical(after[urn])
    }
    expected_kinds = {ISO, VM, APPLY, SECRETS}
    # Of the day-two steps, only each node's upgrade and the health step it guards move.
    steps = {u for u, r in before.items() if r.type == COMMAND}
    node_upgrades = {f"::{node['name']}-upgrade" for node in config["nodes"]}
    moved = {u for u in steps if u.endswith((*node_upgrades, "::cluster-health"))}
    expected = [u for u, r in before.items() if r.type in expected_kinds] + sorted(moved)
    assert sorted(changed) == sorted(expected)
    for urn, paths in changed.items():
        old, new = before[urn], after[urn]
        # Only the changed properties differ, secret markers included.
        top = {path.split(".")[0].split("[")[0] for path in paths}
        assert _without(old.raw_inputs, top) == _without(new.raw_inputs, top)
        if old.type == COMMAND:
            assert paths <= {
                "environment.TALOS_IMAGE",
                "environment.TALOS_VERSION",
                "environment.GUARD",
            }
        elif old.type == ISO:
            assert paths == {"url", "fileName"}
            assert all("v1.13.5" in new.inputs[key] for key in paths)
        elif old.type == APPLY:
            assert paths == {"configPatches[0]"}
            assert _patch_changes(old, new) == {"[0].machine.install.image"}
        else:  # the VM and the machine secrets: only what they ignore, so neither is touched
            ignore_changes, expected = IGNORED_ON_UPGRADE[old.type]
            assert new.ignore_changes == ignore_changes
            assert paths == expected
            assert all(ignored(path, new.ignore_changes) for path in paths)


STEPS = ("upgrade", "vm-restart", "reboot", "decommission")


def test_adding_a_worker_only_adds_resources(program: Program) -> None:
    config = ha_config()
    bigger = copy.deepcopy(config)
    bigger["nodes"].append(
        {
            **config["nodes"][-1],
            "name": "talos-worker-3",
            "ip": "192.168.20.113",
            "mac": "BC:24:11:CA:FE:13",
        }
    )
    before, after = by_urn(program(config)), by_urn(program(bigger))
    added = set(after) - set(before)
    assert set(before) <= set(after)
    assert sorted((after[u].type, after[u].name) for u in added) == sorted(
        [
            (VM, "talos-worker-3"),
            (APPLY, "talos-worker-3-config"),
            (APPLY, "talos-worker-3-staged"),
            *[(COMMAND, f"talos-worker-3-{step}") for step in STEPS],
        ]
    )
    gained_dependencies: list[str] = []
    for urn, old in before.items():
        new = after[urn]
        if new.type == COMMAND and "CLUSTER_WORKERS" in new.inputs.get("environment", {}):
            # Every step sees the node set (its health gate checks all nodes); the guarded
            # steps do nothing when only that moved (cluster/steps.py, UNCHANGED).
            assert new.inputs["environment"]["CLUSTER_WORKERS"].endswith(",192.168.20.113")
            continue
        assert json.dumps(old.raw_inputs, sort_keys=True) == json.dumps(
            new.raw_inputs, sort_keys=True
        ), old.name
        assert (old.parent, old.provider, old.ignore_changes, old.retain_on_delete) == (
            new.parent,
            new.provider,
            new.ignore_changes,
            new.retain_on_delete,
        )
        # Dependencies may only grow, and only by the new node's resources.
        assert set(old.dependencies) <= set(new.dependencies) <= set(old.dependencies) | added
        if set(new.dependencies) != set(old.dependencies):
            gained_dependencies.append(new.type)
    assert gained_dependencies == []


def _without(inputs: dict[str, Any], keys: set[str]) -> str:
    return json.dumps({k: v for k, v in inputs.items() if k not in keys}, sort_keys=True)


def _patch_changes(old: Registration, new: Registration) -> set[str]:
    """Differences between the parsed patch documents, as paths [document].key.key."""
    before = [yaml.safe_load(text) for text in old.inputs["configPatches"]]
    after = [yaml.safe_load(text) for text in new.inputs["configPatches"]]
    assert len(before) == len(after)
    image = after[0]["machine"]["install"]["image"]
    assert image.endswith(":v1.13.5"), image
    return changed_paths(before, after)
