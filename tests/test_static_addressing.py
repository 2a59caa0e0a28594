"""Every node is reached at its static IP from the first boot: nocloud image + cloud-init drive.

Nothing is read from the QEMU guest agent: after install it lists `lo` first, with 127.0.0.1 and
Talos's host-DNS address 169.254.116.108, so any code path that took an address from it would
configure the wrong machine (issue 8 item 8, issue 9 item 1).
"""

from __future__ import annotations

from typing import Any

import pytest

from harness import providers
from harness.engine import Program, plain_strings
from harness.environment import committed_config, ha_config
from harness.tokens import APPLY, BOOTSTRAP, ISO, VM


@pytest.fixture(params=["single-node", "3cp-2w"])
def config(request: pytest.FixtureRequest) -> dict[str, Any]:
    return committed_config() if request.param == "single-node" else ha_config()


def test_every_apply_and_the_bootstrap_target_the_static_ip(
    program: Program, config: dict[str, Any]
) -> None:
    run = program(config)
    static = {node["name"]: node["ip"] for node in config["nodes"]}
    applies = run.of_type(APPLY)
    # Each node's install (from maintenance mode) and its staged day-two config (cluster/rollout).
    expected = sorted(f"{name}-{kind}" for name in static for kind in ("config", "staged"))
    assert sorted(apply.name for apply in applies) == expected
    for apply in applies:
        name = _node_of(apply.name)
        assert (apply.inputs["node"], apply.inputs["endpoint"]) == (static[name], static[name])
        # The apply still waits for the VM it configures (its address is released by the VM).
        assert run.waits_for(apply, run.one(VM, name))
    (bootstrap,) = run.of_type(BOOTSTRAP)
    first = config["nodes"][0]["ip"]
    assert (bootstrap.inputs["node"], bootstrap.inputs["endpoint"]) == (first, first)


def test_each_vm_carries_its_static_address_on_a_cloud_init_drive(
    program: Program, config: dict[str, Any]
) -> None:
    run = program(config)
    nameservers = config["network"]["nameservers"]
    for node in config["nodes"]:
        vm = run.one(VM, node["name"]).inputs
        drive = vm["initialization"]
        # Not ide2, bpg's default, where the ISO sits.
        assert drive["interface"] != vm["cdrom"]["interface"]
        assert drive["datastoreId"] == config["proxmox"]["vmDatastore"]
        assert drive["ipConfigs"] == [
            {"ipv4": {"address": f"{node['ip']}/24", "gateway": config["network"]["gateway"]}}
        ]
        assert drive["dns"] == {"servers": nameservers}
        # Talos's nocloud platform needs Proxmox's nocloud format (its default for Linux) and
        # ignores user data: nothing else is set on the drive.
        assert set(drive) == {"interface", "datastoreId", "ipConfigs", "dns"}


def test_iso_and_installer_are_the_nocloud_platform(program: Program) -> None:
    run = program(committed_config())
    assert "/nocloud-amd64-secureboot.iso" in run.one(ISO, "talos-iso-pve").inputs["url"]
    installer = run.outputs["installerImage"]
    assert installer.startswith("factory.talos.dev/nocloud-installer-secureboot/")
    for apply in run.of_type(APPLY):
        assert any(f"image: {installer}" in patch for patch in apply.inputs["configPatches"])


def test_nothing_waits_for_the_guest_agent_ip(program: Program, config: dict[str, Any]) -> None:
    for vm in program(config).of_type(VM):
        assert vm.inputs["agent"]["enabled"] is True  # kept, for Proxmox's shutdown and status
        assert vm.inputs["agent"]["waitForIp"] == {"disabled": True}
        assert vm.state["ipv4Addresses"] == []  # what bpg returns when it does not ask


AGENT_NIC = "192.168.20.250"


@pytest.fixture
def agent_always_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Worst case: the VM reports what the guest agent sees after install, whatever is asked."""
    monkeypatch.setattr(
        providers,
        "vm_ipv4_addresses",
        lambda _inputs: [["127.0.0.1", providers.HOST_DNS_ADDRESS], [AGENT_NIC]],
    )


@pytest.mark.usefixtures("agent_always_answers")
def test_no_input_is_derived_from_the_addresses_the_agent_reports(
    program: Program, config: dict[str, Any]
) -> None:
    run = program(config)
    for vm in run.of_type(VM):
        assert vm.state["ipv4Addresses"][0][1] == providers.HOST_DNS_ADDRESS  # the poison is there
    agent_addresses = {"127.0.0.1", providers.HOST_DNS_ADDRESS, AGENT_NIC}
    for registration in run.registrations:
        leaked = agent_addresses & set(plain_strings(registration.inputs))
        assert not leaked, (registration.name, leaked)
    for invocation in run.invocations:
        assert not agent_addresses & set(plain_strings(invocation.args)), invocation.token
    static = {node["name"]: node["ip"] for node in config["nodes"]}
    for apply in run.of_type(APPLY):
        assert apply.inputs["node"] == static[_node_of(apply.name)]


def _node_of(apply_name: str) -> str:
    return apply_name.removesuffix("-config").removesuffix("-staged")
