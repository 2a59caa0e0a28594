"""Section 4 of issue 11: one front door that works on one node and on many. Traefik runs on
every control plane with hostPorts 80/443, so the API address (the VIP with several control
planes, the node itself on one) answers HTTP(S); DNS for the domain points there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.engine import Program
from harness.environment import committed_config, ha_config
from harness.tokens import CONFIGMAP
from tests.manifests.tree import dig, index

CONTROL_PLANE = "node-role.kubernetes.io/control-plane"


def _traefik_values() -> dict[str, Any]:
    return index().helmrelease("traefik")["spec"]["values"]


def test_traefik_listens_on_every_control_plane() -> None:
    values = _traefik_values()
    assert dig(values, ("deployment", "kind")) == "DaemonSet"
    assert values["nodeSelector"] == {CONTROL_PLANE: ""}
    assert {"key": CONTROL_PLANE, "operator": "Exists", "effect": "NoSchedule"} in values[
        "tolerations"
    ]
    assert (
        dig(values, ("ports", "web", "hostPort")),
        dig(values, ("ports", "websecure", "hostPort")),
    ) == (80, 443)


@pytest.mark.parametrize(
    ("config", "front_door"),
    [(ha_config, "192.168.20.99"), (committed_config, "192.168.20.100")],
    ids=["3-control-planes-2-workers", "single-node"],
)
def test_the_front_door_is_the_api_address(
    program: Program, config: Callable[[], dict[str, Any]], front_door: str
) -> None:
    """With 3 control planes + 2 workers the VIP always sits on a control plane, where Traefik
    listens; on a single node it is that node. Flux gets the address as API_ADDRESS."""
    run = program(config())
    settings = run.one(CONFIGMAP, "cluster-settings").inputs["data"]
    assert settings["API_ADDRESS"] == front_door
    controlplanes = [
        n for n in config()["nodes"] if n.get("role", "controlplane") == "controlplane"
    ]
    assert front_door in {n["ip"] for n in controlplanes} | {config()["network"].get("vip")}
