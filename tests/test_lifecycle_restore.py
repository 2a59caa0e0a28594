"""Restore through the lifecycle simulation: the state and the cluster are lost; a new stack
adopts the escrowed secrets (no new ones, the same client CA) and recovers etcd from a snapshot
instead of bootstrapping it, once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.engine import ProgramRun
from harness.environment import committed_config, ha_config, node_values
from harness.lifecycle import Lifecycle
from harness.tokens import APPLY, BOOTSTRAP, CLIENT_CONFIGURATION, COMMAND, SECRETS
from tests.test_restore import snapshot
from tests.test_secrets_escrow import run_escrow_command

Config = dict[str, Any]


@pytest.fixture(params=["single-node", "3cp-2w"])
def layout(request: pytest.FixtureRequest) -> Config:
    return committed_config() if request.param == "single-node" else ha_config()


def client_ca(program: ProgramRun | None) -> set[str]:
    """The CA of every client configuration the run handed a Talos call."""
    assert program is not None
    cas = {
        i.args["clientConfiguration"]["caCertificate"]
        for i in program.invoked(CLIENT_CONFIGURATION)
    }
    cas |= {a.inputs["clientConfiguration"]["caCertificate"] for a in program.of_type(APPLY)}
    return cas


def restored(config: Config, snap: Path) -> Config:
    return {
        **config,
        "backup": {**config["backup"], "adoptSecrets": True, "restoreFrom": str(snap)},
    }


def test_a_lost_cluster_is_rebuilt_from_the_escrow_and_a_snapshot(
    layout: Config, workdir: Path, secrets_file: Path
) -> None:
    # The first stack: created, its secrets escrowed (the escrow step run for real), a snapshot.
    first = Lifecycle(str(secrets_file))
    created = first.up(layout)
    assert created.error is None, created.error
    assert ("escrow", "talos-secrets.enc.yaml") in created.events
    assert created.program is not None
    run_escrow_command(created.program, workdir)
    original_ca = client_ca(created.program)
    snap = snapshot(workdir)

    # State and VMs lost: a new stack against an empty Proxmox.
    second = Lifecycle(str(secrets_file))
    result = second.up(restored(layout, snap))
    assert result.error is None, result.error
    # Adopted, not generated: the same CA signs the client configuration.
    assert result.op(SECRETS, "machine-secrets") == "import"
    assert client_ca(result.program) == original_ca
    # etcd recovered once, after every control plane waits in Preparing; never bootstrapped.
    controlplanes = node_values(layout, "controlplane")
    assert result.op(BOOTSTRAP, "bootstrap") == "absent"
    assert result.of("bootstrap") == []
    (recovery,) = result.of("bootstrap-recover")
    assert recovery == ("bootstrap-recover", controlplanes[0])
    at = result.events.index(recovery)
    assert [e[1] for e in result.events[:at] if e[0] == "etcd-preparing"] == controlplanes
    assert ("decrypt-snapshot", str(snap)) in result.events[:at]
    # Day two follows the recovery as it follows a bootstrap: the health gate passes.
    assert ("health",) in result.events[at:]
    # And the rebuilt cluster passes the strict health check on exactly the configured nodes.
    second.world.check_health(
        node_values(layout, "controlplane", "ip"), node_values(layout, "worker", "ip")
    )

    # The next runs, restore settings still in place, never recover again.
    again = second.up(restored(layout, snap))
    assert again.error is None, again.error
    assert again.changed() == {}
    grown = restored(layout, snap)
    grown["nodes"] = [
        *grown["nodes"],
        {
            **grown["nodes"][-1],
            "name": "talos-extra",
            "ip": "192.168.20.120",
            "mac": "BC:24:11:00:00:99",
            "role": "worker",
            "vmId": 999,
        },
    ]
    added = second.up(grown)
    assert added.error is None, added.error
    assert added.op(COMMAND, "bootstrap-recover") == "same"
    assert added.of("bootstrap-recover") == []
