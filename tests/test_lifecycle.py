"""Day two, proven over successive runs of the real program against a fake Proxmox + Talos.

Each scenario creates the cluster, then makes one config edit and runs `pulumi up` again
(harness/lifecycle.py carries the state as the engine does; harness/world.py plays the nodes).
"""

from __future__ import annotations

import copy
import itertools
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cluster import steps
from harness.engine import SECRET_SIG, run_program
from harness.environment import committed_config, ha_config, node_values
from harness.lifecycle import Lifecycle, LifecycleMocks, RunResult
from harness.tokens import BOOTSTRAP, COMMAND, VM
from harness.world import schematic_of
from settings.compatibility import KUBERNETES_BY_TALOS_MINOR, KubernetesRange

Config = dict[str, Any]


@pytest.fixture(params=["single-node", "3cp-2w"])
def layout(request: pytest.FixtureRequest) -> Config:
    config = committed_config() if request.param == "single-node" else ha_config()
    config["cluster"]["kubernetesVersion"] = "v1.34.3"
    return config


@pytest.fixture
def created(
    layout: Config, secrets_file: Path, sops: Path, age_key: Path
) -> tuple[Lifecycle, Config]:
    sim = Lifecycle(str(secrets_file))
    result = sim.up(layout)
    assert result.error is None, result.error
    return sim, layout


def edited(config: Config, edit: Callable[[Config], None]) -> Config:
    changed = copy.deepcopy(config)
    edit(changed)
    return changed


def rolled_in_order(result: RunResult, kind: str, expected: list[str]) -> None:
    """`kind` events hit exactly `expected`, in that order, each between two health checks."""
    hits = [
        i for i, event in enumerate(result.events) if event[:2] in {(kind, n) for n in expected}
    ]
    assert [result.events[i][1] for i in hits] == expected
    for i in hits:
        before, after = result.events[:i], result.events[i + 1 :]
        last_disruption = max(
            (j for j, e in enumerate(before) if e[0] == "reboot" and j != i - 1), default=-1
        )
        assert ("health",) in before[last_disruption + 1 :], f"no health gate before {i}"
        assert ("health",) in after, f"no health check after {result.events[i]}"


def never_two_controlplanes_at_once(result: RunResult, config: Config) -> None:
    cps = set(node_values(config, "controlplane"))
    reboots = [i for i, e in enumerate(result.events) if e[0] == "reboot" and e[1] in cps]
    for first, second in itertools.pairwise(reboots):
        assert ("health",) in result.events[first + 1 : second], result.events[first : second + 1]


def test_create_installs_every_node_at_its_static_ip_and_bootstraps_once(created: Any) -> None:
    sim, config = created
    for node in config["nodes"]:
        machine = sim.world.machines[node["name"]]
        assert (machine.ip, machine.version) == (node["ip"], config["cluster"]["talosVersion"])
    assert [e for e in sim.world.events if e[0] == "bootstrap"] == [("bootstrap", "talos-cp-1")]
    # Nothing rolls on create; one health check once the cluster is up.
    assert not [e for e in sim.world.events if e[0] in {"reboot", "upgrade", "upgrade-k8s"}]
    assert sim.world.events[-1] == ("health",)


def test_a_second_run_without_change_changes_nothing(created: Any) -> None:
    sim, config = created
    result = sim.up(config)
    assert (result.error, result.changed(), result.events) == (None, {}, [])


def test_a_config_change_is_staged_then_rolled_node_by_node(created: Any) -> None:
    sim, config = created
    result = sim.up(edited(config, lambda c: c["network"]["nameservers"].append("8.8.8.8")))
    assert result.error is None, result.error
    assert result.of("apply") == []  # nothing applied in a mode that reboots by itself
    assert {e[1] for e in result.of("stage")} == set(node_values(config))
    order = node_values(config, "controlplane") + node_values(config, "worker")
    reboots = [e[1] for e in result.events if e[0] == "reboot"]
    assert reboots == order
    never_two_controlplanes_at_once(result, config)
    rolled_in_order(result, "reboot", order)
    assert all("8.8.8.8" in (m.active_config or "") for m in sim.world.machines.values())


def test_a_talos_bump_upgrades_node_by_node_after_a_snapshot(created: Any) -> None:
    sim, config = created
    already = node_values(config)[-1]  # e.g. upgraded by hand after a failed run
    sim.world.machines[already].version = "v1.12.5"
    result = sim.up(edited(config, lambda c: c["cluster"].update(talosVersion="v1.12.5")))
    assert result.error is None, result.error
    expected = [
        n
        for n in node_values(config, "controlplane") + node_values(config, "worker")
        if n != already
    ]
    rolled_in_order(result, "upgrade", expected)
    assert ("skip", already) in result.events
    if not expected:  # a single node already at the target: nothing to do, not even a snapshot
        assert result.of("upgrade") == result.of("etcd-snapshot") == result.of("reboot") == []
        return
    first_upgrade = next(i for i, e in enumerate(result.events) if e[0] == "upgrade")
    snapshot = result.events.index(("etcd-snapshot", "talos-cp-1"))
    assert ("health",) in result.events[:snapshot]
    assert snapshot < result.events.index(("encrypted",)) < first_upgrade
    assert all(m.version == "v1.12.5" for m in sim.world.machines.values())
    # The upgrade's own reboot activates the staged config: no second reboot per node.
    assert [e for e in result.events if e[0] == "reboot" and e[2] != "upgrade"] == []
    never_two_controlplanes_at_once(result, config)


def planned_image(sim: Lifecycle, config: Config) -> str:
    """The installer image a run with `config` upgrades to, as `pulumi preview --diff` shows it
    in each upgrade step's environment (the program evaluated; nothing reaches the world)."""
    program = run_program(
        {**config, "secretsFile": sim.secrets_file},
        provider_mocks=LifecycleMocks(sim.outputs, sim.world),
    )
    return program.one(COMMAND, "talos-cp-1-upgrade").inputs["environment"]["TALOS_IMAGE"]


def _more_extensions(config: Config) -> None:
    config["image"]["extensions"].append("siderolabs/iscsi-tools")


def test_an_extension_change_alone_upgrades_every_node(created: Any) -> None:
    """Same Talos version, new Image Factory schematic: every node runs the version already, but
    not the installer image, so none may be skipped."""
    sim, config = created
    changed = edited(config, _more_extensions)
    target = planned_image(sim, changed)
    version = config["cluster"]["talosVersion"]
    assert target.endswith(f":{version}")
    assert all(m.image != target for m in sim.world.machines.values())
    result = sim.up(changed)
    assert result.error is None, result.error
    order = node_values(config, "controlplane") + node_values(config, "worker")
    rolled_in_order(result, "upgrade", order)
    assert result.of("skip") == []
    snapshot = result.events.index(("etcd-snapshot", "talos-cp-1"))
    assert ("health",) in result.events[:snapshot]
    assert snapshot < result.events.index(("upgrade", "talos-cp-1", version))
    never_two_controlplanes_at_once(result, config)
    assert {(m.image, m.schematic, m.version) for m in sim.world.machines.values()} == {
        (target, schematic_of(target), version)
    }


def test_a_node_already_running_the_target_image_is_skipped(created: Any) -> None:
    """Version and schematic both match (e.g. upgraded by hand after a failed run): skipped."""
    sim, config = created
    changed = edited(config, _more_extensions)
    target = planned_image(sim, changed)
    already = node_values(config)[-1]
    machine = sim.world.machines[already]
    machine.image, machine.schematic = target, schematic_of(target)
    result = sim.up(changed)
    assert result.error is None, result.error
    assert ("skip", already) in result.events
    expected = [
        n
        for n in node_values(config, "controlplane") + node_values(config, "worker")
        if n != already
    ]
    rolled_in_order(result, "upgrade", expected)
    assert [e[1] for e in result.of("skip")] == [already]
    if not expected:  # a single node already at the target: nothing to do, not even a snapshot
        assert result.of("upgrade") == result.of("etcd-snapshot") == result.of("reboot") == []


_SCHEMATIC = "ab" * 32


@pytest.mark.parametrize(
    ("version", "extension_versions", "skipped"),
    [
        ("v1.12.4", ["1.0.0", _SCHEMATIC], True),  # the target image
        ("v1.12.4", ["1.0.0", "cd" * 32], False),  # another schematic: an extension change
        ("v1.12.4", [f"{_SCHEMATIC}-x"], False),  # whole lines only
        ("v1.12.3", [_SCHEMATIC], False),  # another version
        ("v1.12.4", [], False),  # not an Image Factory image: no schematic extension
    ],
)
def test_the_skip_check_as_bash_runs_it(
    version: str, extension_versions: list[str], skipped: bool
) -> None:
    """The lines harness/world.py interprets, run by bash against talosctl-shaped answers (one
    line per resource), so the parameter expansion and quoting are bash's, not the world's."""
    answers = " ".join(extension_versions)
    fake_talosctl = (
        'talos() { case "$*" in\n'
        f'  *" get version -o jsonpath={{.spec.version}}") echo {version} ;;\n'
        f'  *" get extensions -o jsonpath={{.spec.metadata.version}}")\n'
        f'    printf "%s\\n" {answers} ;;\n'
        '  *) echo "unexpected: $*" >&2; exit 9 ;;\n'
        "esac; }\n"
    )
    image = f"factory.talos.dev/nocloud-installer-secureboot/{_SCHEMATIC}:v1.12.4"
    text = "set -euo pipefail\n" + fake_talosctl + "\n".join(steps.skip_if_running("10.0.0.1"))
    run = subprocess.run(
        [*steps.INTERPRETER, text + "\necho upgrade\n"],
        env={
            "TALOS_IMAGE": image,
            "TALOS_VERSION": "v1.12.4",
            "GUARD": image,
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout == (f"done {image}\n" if skipped else "upgrade\n")


@pytest.mark.parametrize(
    ("configured", "workers", "live_workers", "expected"),
    [
        # A removed worker (.9) is still a Node: listed after the configured ones.
        (True, "", ".9", "-e .1 -n .1 health --control-plane-nodes .1,.2 --worker-nodes .9"),
        (True, ".8", ".8", "-e .1 -n .1 health --control-plane-nodes .1,.2 --worker-nodes .8"),
        # A decommission lists only the Nodes left; the first of them answers.
        (False, ".8", "", "-e .2 -n .2 health --control-plane-nodes .2,.1"),
    ],
)
def test_the_health_gate_lists_as_bash_runs_it(
    configured: bool, workers: str, live_workers: str, expected: str
) -> None:
    """The gate's lines harness/world.py interprets, run by bash with the real prelude against a
    kubectl that answers the label selector as the API server would (space-separated JSONPath
    results), so the lists talosctl health gets are bash's, not the world's."""
    fakes = (
        'kube() { case "$*" in\n'
        f'  "get nodes -l {steps.CONTROLPLANE_LABEL} "*) echo ".2 .1" ;;\n'
        f'  "get nodes -l !{steps.CONTROLPLANE_LABEL} "*) echo "{live_workers}" ;;\n'
        '  *) echo "unexpected: $*" >&2; exit 9 ;;\n'
        "esac; }\n"
        "talos() { printf '%s\\n' \"$*\"; }\n"
    )
    run = subprocess.run(
        [*steps.INTERPRETER, steps.PRELUDE + fakes + steps.health(configured) + "\n"],
        input="e30=\ne30=\ntoken\n",
        env={"CLUSTER_CONTROLPLANES": ".1,.2", "CLUSTER_WORKERS": workers, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout == f"{expected} --wait-timeout {steps.NODE_TIMEOUT}\n"


def test_the_health_gate_fails_when_kubernetes_never_answers() -> None:
    """`nodes` retries a while (the API server may be restarting), then fails the step."""
    fakes = "kube() { return 1; }\nsleep() { :; }\ntalos() { echo ran; }\n"
    run = subprocess.run(
        [*steps.INTERPRETER, steps.PRELUDE + fakes + steps.health() + "\n"],
        input="e30=\ne30=\ntoken\n",
        env={"CLUSTER_CONTROLPLANES": ".1", "CLUSTER_WORKERS": "", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (run.returncode, run.stdout) == (1, "")


def test_an_unsupported_talos_jump_stops_before_anything_runs(
    created: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, config = created
    # Every minor the table knows today (1.12, 1.13) is reachable from every other: a future
    # minor three steps up, with a range that admits the running Kubernetes, makes the jump.
    monkeypatch.setitem(
        KUBERNETES_BY_TALOS_MINOR, (1, 15), KubernetesRange(minimum=(1, 33, 0), maximum=(1, 38, 99))
    )
    result = sim.up(edited(config, lambda c: c["cluster"].update(talosVersion="v1.15.0")))
    assert "homelab:cluster.talosVersion" in str(result.error)
    assert "v1.12.4" in str(result.error)
    assert result.events == []
    assert all(m.version == "v1.12.4" for m in sim.world.machines.values())
    # The refused run did not move the record: the fix can be retried.
    assert sim.outputs["deployed"]["talosVersion"] == "v1.12.4"


def test_a_kubernetes_bump_runs_upgrade_k8s_before_any_config_carries_it(created: Any) -> None:
    sim, config = created
    result = sim.up(edited(config, lambda c: c["cluster"].update(kubernetesVersion="v1.35.0")))
    assert result.error is None, result.error
    assert result.of("upgrade-k8s") == [("upgrade-k8s", "1.35.0")]
    k8s = result.events.index(("upgrade-k8s", "1.35.0"))
    carrying = [
        i for i, e in enumerate(result.events) if e[0] in {"stage", "apply"} and e[2] == "1.35.0"
    ]
    assert carrying and min(carrying) > k8s
    assert result.of("apply") == []


def test_a_multi_minor_kubernetes_jump_is_refused_up_front(created: Any) -> None:
    sim, config = created
    result = sim.up(edited(config, lambda c: c["cluster"].update(kubernetesVersion="v1.36.0")))
    assert "homelab:cluster.kubernetesVersion" in str(result.error)
    assert result.events == []


def _worker(config: Config, index: int) -> dict[str, Any]:
    base = config["nodes"][0]
    return {
        **base,
        "name": f"talos-worker-{index}",
        "role": "worker",
        "ip": f"192.168.20.12{index}",
        "mac": f"BC:24:11:CA:FE:2{index}",
    }


def test_adding_a_worker_touches_only_that_node(created: Any) -> None:
    sim, config = created
    bigger = edited(config, lambda c: c["nodes"].append(_worker(c, 9)))
    result = sim.up(bigger)
    assert result.error is None, result.error
    created_now = {key.split("::")[1] for key, op in result.changed().items() if op != "update"}
    assert all(name.startswith("talos-worker-9") for name in created_now), created_now
    assert [e for e in result.events if e[0] in {"upgrade", "reset", "install"}] == [
        ("install", "talos-worker-9", "v1.12.4")
    ]
    # Only a node whose own config changed reboots: a lone control plane stops running
    # workloads once there is a worker (allowSchedulingOnControlPlanes, cluster/patches.py).
    restaged = [e[1] for e in result.of("stage") if e[1] != "talos-worker-9"]
    assert [e[1] for e in result.of("reboot")] == restaged
    assert restaged == ([] if len(node_values(config)) > 1 else ["talos-cp-1"])
    assert result.events[-1] == ("health",)  # the health step guards the node set


def test_removing_a_worker_drains_and_resets_it_before_its_vm_goes(created: Any) -> None:
    sim, config = created
    bigger = edited(config, lambda c: c["nodes"].append(_worker(c, 9)))
    assert sim.up(bigger).error is None
    result = sim.up(config)
    assert result.error is None, result.error
    gone = "talos-worker-9"
    sequence = [e for e in result.events if len(e) > 1 and e[1] == gone and e[0] != "step"]
    assert sequence == [
        ("drain", gone),
        ("reset", gone),
        ("node-delete", gone),
        ("vm-delete", gone),
    ]
    assert result.op(VM, gone) == "delete"
    assert gone not in sim.world.machines
    # Checked once it left, against the cluster without it (the world's health is strict).
    assert result.events[result.events.index(("node-delete", gone)) + 1] == ("health",)


def test_removing_control_planes_leaves_etcd_one_at_a_time(created: Any) -> None:
    sim, config = created
    if len(node_values(config, "controlplane")) == 1:
        result = sim.up(edited(config, lambda c: c["nodes"].pop(0)))
        assert "homelab:nodes" in str(result.error)
        assert result.events == []
        return
    smaller = edited(config, lambda c: c["nodes"].__delitem__(slice(1, 3)))
    result = sim.up(smaller)
    assert result.error is None, result.error
    for gone in ("talos-cp-2", "talos-cp-3"):
        leave = result.events.index(("etcd-leave", gone))
        assert leave < result.events.index(("vm-delete", gone))
    assert result.of("vm-destroyed-in-cluster") == []
    # One at a time, the last in config order first (the decommissions are chained).
    assert [e[1] for e in result.of("etcd-leave")] == ["talos-cp-3", "talos-cp-2"]
    assert [m.name for m in sim.world.machines.values() if m.etcd_member] == ["talos-cp-1"]
    for gone in ("talos-cp-3", "talos-cp-2"):  # each checked before the next one leaves
        assert result.events[result.events.index(("node-delete", gone)) + 1] == ("health",)


def test_a_configured_node_kubernetes_does_not_know_stops_the_roll(created: Any) -> None:
    """The gates list the configured nodes too: a node Kubernetes lost is not rolled past."""
    sim, config = created
    sim.world.machines[node_values(config)[-1]].node_object = False
    result = sim.up(edited(config, lambda c: c["network"]["nameservers"].append("8.8.8.8")))
    assert "cluster not healthy" in str(result.error)
    assert result.of("reboot") == []


def test_a_vm_resize_is_rolled_by_proxmox_restarts(created: Any) -> None:
    sim, config = created

    def resize(c: Config) -> None:
        for node in c["nodes"]:
            node["cores"] = 8

    result = sim.up(edited(config, resize))
    assert result.error is None, result.error
    order = node_values(config, "controlplane") + node_values(config, "worker")
    reboots = [e for e in result.events if e[0] == "reboot"]
    assert reboots == [("reboot", n, "vm-restart") for n in order]
    rolled_in_order(result, "reboot", order)
    never_two_controlplanes_at_once(result, config)
    assert all(m.size[0] == 8 and m.pending_size is None for m in sim.world.machines.values())


def test_a_run_while_a_node_is_down_does_not_wait_on_health(created: Any) -> None:
    sim, config = created
    sim.world.machines[node_values(config)[-1]].down = True
    result = sim.up(config)
    assert (result.error, result.changed(), result.events) == (None, {}, [])


def test_replacing_the_first_control_planes_vm(created: Any) -> None:
    """A lone control plane's new VM is bootstrapped again; with several, it joins their etcd."""
    sim, config = created
    alone = len(node_values(config, "controlplane")) == 1
    result = sim.up(config, replace=["talos-cp-1"])
    assert result.error is None, result.error
    assert result.op(BOOTSTRAP, "bootstrap") == ("replace" if alone else "same")
    assert (("bootstrap", "talos-cp-1") in result.events) == alone
    assert sim.world.machines["talos-cp-1"].etcd_member
    assert result.op(COMMAND, "talos-cp-1-decommission") == "same"


def test_steps_get_secrets_on_stdin_only_and_show_what_moves(created: Any) -> None:
    """Item 7: the preview diff can show each step's environment (plain), never its secrets."""
    sim, config = created
    result = sim.up(edited(config, lambda c: c["cluster"].update(talosVersion="v1.12.5")))
    assert result.program is not None
    for step in result.program.of_type(COMMAND):
        raw = step.raw_inputs
        assert SECRET_SIG in json.dumps(raw["stdin"]), step.name
        assert SECRET_SIG not in json.dumps(raw.get("environment", {})), step.name
        text = " ".join(str(step.inputs.get(k, "")) for k in ("create", "update", "delete"))
        assert "context: homelab" not in text and "apiVersion: v1" not in text
    steps = result.program.of_type(COMMAND)
    upgrades = [s for s in steps if s.name.startswith("talos-") and s.name.endswith("-upgrade")]
    assert len(upgrades) == len(config["nodes"])
    assert {s.inputs["environment"]["TALOS_VERSION"] for s in upgrades} == {"v1.12.5"}
