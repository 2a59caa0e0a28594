"""The Talos side as registered: config apply, bootstrap, health, kubeconfig, secret outputs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from cluster import steps
from harness.engine import Program, ProgramRun, plain_strings
from harness.environment import PROXMOX_TOKEN, committed_config, ha_config
from harness.tokens import (
    APPLY,
    BOOTSTRAP,
    CLIENT_CONFIGURATION,
    COMMAND,
    HEALTH,
    KUBECONFIG,
    MACHINE_CONFIGURATION,
    SECRETS,
    VM,
)
from tests.stubs import stub_path
from tests.talos_schemas import TALOS_MINORS, schema_errors


@pytest.fixture(params=["single-node", "3cp-2w"])
def run(request: pytest.FixtureRequest, program: Program) -> ProgramRun:
    return program(committed_config() if request.param == "single-node" else ha_config())


def test_config_is_applied_to_the_static_ip_of_each_node(run: ProgramRun) -> None:
    vms = run.of_type(VM)
    for vm in vms:
        ip = run.outputs["nodeIps"][vm.name]
        for apply in (run.one(APPLY, f"{vm.name}-config"), run.one(APPLY, f"{vm.name}-staged")):
            assert (apply.inputs["node"], apply.inputs["endpoint"]) == (ip, ip)


def test_applied_patches_parse_back_per_node(run: ProgramRun) -> None:
    node_ips = run.outputs["nodeIps"]
    for apply in run.of_type(APPLY):
        name = apply.name.removesuffix("-config").removesuffix("-staged")
        documents = [yaml.safe_load(text) for text in apply.inputs["configPatches"]]
        by_kind = {document.get("kind", "v1alpha1"): document for document in documents}
        assert by_kind["HostnameConfig"]["hostname"] == name
        assert by_kind["LinkConfig"]["addresses"] == [{"address": f"{node_ips[name]}/24"}]
        assert by_kind["LinkConfig"]["routes"] == [{"gateway": "192.168.20.1"}]
        mac = run.one(VM, name).inputs["networkDevices"][0]["macAddress"].lower()
        assert mac in by_kind["LinkAliasConfig"]["selector"]["match"]
        install = by_kind["v1alpha1"]["machine"]["install"]
        assert install["image"] == run.outputs["installerImage"]
        for minor in TALOS_MINORS:
            for document in documents:
                assert schema_errors(minor, document) == [], (minor, document)


def test_vip_is_applied_to_control_planes_only_when_there_are_several(run: ProgramRun) -> None:
    several = len(run.outputs["controlPlaneIps"]) > 1
    for apply in run.of_type(APPLY):
        kinds = [yaml.safe_load(t).get("kind") for t in apply.inputs["configPatches"]]
        is_controlplane = "-cp-" in apply.name
        assert ("Layer2VIPConfig" in kinds) == (several and is_controlplane)


def test_machine_configuration_matches_the_role(run: ProgramRun) -> None:
    for apply in run.of_type(APPLY):
        role = "controlplane" if "-cp-" in apply.name else "worker"
        assert f"# {role} of homelab" in apply.inputs["machineConfigurationInput"]
    for invocation in run.invoked(MACHINE_CONFIGURATION):
        endpoint = "192.168.20.99" if len(run.outputs["controlPlaneIps"]) > 1 else "192.168.20.100"
        assert invocation.args["clusterName"] == "homelab"
        assert invocation.args["clusterEndpoint"] == f"https://{endpoint}:6443"
        assert invocation.args["talosVersion"] == "v1.12.4"


def test_bootstrap_once_on_the_first_control_plane_after_its_apply(run: ProgramRun) -> None:
    (bootstrap,) = run.of_type(BOOTSTRAP)
    first_ip = run.outputs["nodeIps"]["talos-cp-1"]
    assert bootstrap.inputs["node"] == bootstrap.inputs["endpoint"] == first_ip
    assert run.waits_for(bootstrap, run.one(APPLY, "talos-cp-1-config"))


def test_kubeconfig_after_bootstrap_and_no_health_invoke(run: ProgramRun) -> None:
    (kubeconfig,) = run.of_type(KUBECONFIG)
    (bootstrap,) = run.of_type(BOOTSTRAP)
    assert run.waits_for(kubeconfig, bootstrap)
    assert kubeconfig.inputs["node"] == run.outputs["nodeIps"]["talos-cp-1"]
    # Health is a step resource (cluster/rollout.py), never an invoke waiting on every run.
    assert run.invoked(HEALTH) == []


def test_installs_do_not_wait_for_each_other(program: Program) -> None:
    run = program(ha_config())
    applies = [apply for apply in run.of_type(APPLY) if apply.name.endswith("-config")]
    for first in applies:
        assert not any(run.waits_for(first, other) for other in applies if other is not first)


def test_talos_invokes_get_the_cluster_secrets_whole_and_by_their_wire_names(
    run: ProgramRun,
) -> None:
    """Invokes pass nested keys as written: each must arrive exactly as the provider names them."""
    (secrets,) = run.of_type(SECRETS)
    configurations = run.invoked(MACHINE_CONFIGURATION)
    assert configurations
    for invocation in configurations:
        assert invocation.args["machineSecrets"] == secrets.state["machineSecrets"]
    # The talosconfig is the one client-side invoke left (health is a step of cluster/rollout.py).
    client_invokes = run.invoked(CLIENT_CONFIGURATION)
    assert len(client_invokes) == 1
    for invocation in client_invokes:
        assert invocation.args["clientConfiguration"] == secrets.state["clientConfiguration"]


def test_node_steps_get_a_30_minute_budget_the_provider_reads(run: ProgramRun) -> None:
    """The resources' own `timeouts` inputs, as sent: a slow uplink pulls the installer."""
    applies = run.of_type(APPLY)
    assert applies
    for apply in applies:
        assert apply.raw_inputs["timeouts"] == {"create": "30m", "update": "30m"}
    (bootstrap,) = run.of_type(BOOTSTRAP)
    assert bootstrap.raw_inputs["timeouts"] == {"create": "30m"}
    # The health gate waits as long: talosctl health's own --wait-timeout.
    health = run.one(COMMAND, "cluster-health")
    assert "--wait-timeout 30m" in health.inputs["create"]


def test_machine_secrets_survive_a_talos_upgrade(run: ProgramRun) -> None:
    (secrets,) = run.of_type(SECRETS)
    assert secrets.inputs["talosVersion"] == "v1.12.4"
    assert secrets.ignore_changes == ["talosVersion"]


def test_stack_outputs(run: ProgramRun) -> None:
    assert {"talosconfig", "kubeconfig"} <= run.secret_outputs
    assert run.outputs["kubeconfig"].startswith("apiVersion: v1")
    assert run.outputs["talosconfig"].startswith("context: homelab")
    assert set(run.outputs["vmIds"]) == set(run.outputs["nodeIps"])
    assert all(isinstance(vm_id, int) for vm_id in run.outputs["vmIds"].values())
    assert run.outputs["controlPlaneIps"][0] == run.outputs["nodeIps"]["talos-cp-1"]


def test_the_api_token_never_appears_in_plain_inputs(run: ProgramRun) -> None:
    leaks = [
        r.name
        for r in run.registrations
        if any(PROXMOX_TOKEN in s for s in plain_strings(r.raw_inputs))
    ]
    assert leaks == []
    provider = run.one("pulumi:providers:proxmoxve", "proxmox")
    assert PROXMOX_TOKEN in str(provider.inputs)  # it is there — only ever as a secret


def test_machine_configuration_travels_as_a_secret(run: ProgramRun) -> None:
    for apply in run.of_type(APPLY):
        assert apply.inputs["machineConfigurationInput"] not in list(
            plain_strings(apply.raw_inputs)
        )
        assert "clientConfiguration" not in str(list(plain_strings(apply.raw_inputs)))


def test_a_preview_never_invokes_the_health_check(program: Program) -> None:
    run = program(committed_config(), preview=True)
    assert run.invoked(HEALTH) == []
    assert len(run.of_type(BOOTSTRAP)) == 1


@pytest.mark.parametrize("insecure", [True, False])
def test_the_vm_restart_accepts_a_self_signed_proxmox_certificate_only_when_told(
    program: Program, tmp_path: Path, insecure: bool
) -> None:
    """The restart goes to the Proxmox API with curl, which, like the provider, must take the
    default self-signed certificate only when homelab:proxmox.insecure says so."""
    config = committed_config()
    config["proxmox"]["insecure"] = insecure
    step = program(config).one(COMMAND, "talos-cp-1-vm-restart")
    path = stub_path(tmp_path, {"curl": '#!/bin/sh\necho "$@"\n'}, os.environ["PATH"])
    script = steps.PRELUDE + 'pve "nodes/pve/qemu/100/status/reboot"\n'
    env = {**step.inputs["environment"], "PATH": path}
    result = subprocess.run(
        [*steps.INTERPRETER, script],
        input="\n\npulumi@pve!homelab=token\n",
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    arguments = result.stdout.split()
    assert ("--insecure" in arguments) is insecure
    assert arguments[-1] == "https://192.168.20.10:8006/api2/json/nodes/pve/qemu/100/status/reboot"
