"""DayTwo: every change after the first install, as resources that run only when their input moves.

Each step is a pulumi-command `local.Command` (pulumi/pulumi-command, provider/pkg/provider/local/
commandController.go): `create` runs once when the step is first made, `update` runs when any
non-trigger input changes, `delete` runs when the step leaves the program (using the inputs in
state), and unchanged inputs run nothing. So every step here has a `create` that only records what
it guards (a new node was just installed with exactly this config, image and size), an `update`
that does the work, and inputs that are exactly what it guards: the node's installer image,
config digest, VM size. No step uses
`triggers` (a replaceOnChanges input, common/inputs.go): a replace would also run `delete`.

Order: `kubernetes-upgrade` → every node's staged config → per node, control planes first in
config order, then workers: `upgrade` → `vm-restart` → `reboot`, each waiting for the previous
node's last step; each step checks cluster health before and after. Steps that do not change run
nothing, so only changed nodes roll, one at a time. `cluster-health` then guards the GitOps half.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_command as command
import pulumiverse_talos as talos

from cluster import steps
from cluster.patches import node_patches, render
from settings import Node, Role, Settings


@dataclass(frozen=True)
class DayTwoArgs:
    settings: Settings
    installer_image: pulumi.Output[str]
    client_configuration: pulumi.Output[Any]
    machine_configurations: Mapping[Role, pulumi.Output[str]]
    # Each node's rendered patches (TalosCluster.patches), staged when they change.
    patches: Mapping[str, pulumi.Output[list[str]]]
    # The install applies, one per node: a node's day-two steps start after its install.
    installs: Mapping[str, pulumi.Resource]
    bootstrap: pulumi.Resource
    talosconfig: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    proxmox_api_token: pulumi.Output[str]
    vm_ids: Mapping[str, pulumi.Output[int]]


class DayTwo(pulumi.ComponentResource):
    # The cluster is healthy after the last change this run made (or was, when nothing changed).
    healthy: pulumi.Output[str]

    def __init__(
        self, name: str, args: DayTwoArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:cluster:DayTwo", name, None, opts)
        settings = args.settings
        cps = [str(node.ip) for node in settings.controlplanes]
        workers = [str(node.ip) for node in settings.workers]
        gate = steps.health()
        cluster_nodes = {
            "CLUSTER_CONTROLPLANES": ",".join(cps),
            "CLUSTER_WORKERS": ",".join(workers),
        }
        stdin = pulumi.Output.secret(
            pulumi.Output.all(args.talosconfig, args.kubeconfig, args.proxmox_api_token).apply(
                lambda v: f"{_b64(v[0])}\n{_b64(v[1])}\n{v[2]}\n"
            )
        )
        proxmox_api = settings.proxmox.endpoint.rstrip("/") + "/api2/json"

        def step(
            step_name: str,
            environment: Mapping[str, pulumi.Input[str]],
            update: str | None = None,
            delete: str | None = None,
            after: Sequence[pulumi.Resource] | None = None,
        ) -> command.local.Command:
            return command.local.Command(
                step_name,
                # Only records what the step guards (see steps.RECORD); touches no node.
                create=steps.script(steps.RECORD) if update else None,
                update=update,
                delete=delete,
                environment={**cluster_nodes, **environment},
                # The default, stated: the guard in steps.UNCHANGED reads the last stdout.
                add_previous_output_in_env=True,
                stdin=stdin,
                interpreter=steps.INTERPRETER,
                # Without a create command, a new step runs nothing: see the module docstring.
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(after or [])),
            )

        first = settings.bootstrap_node
        # Before any config carrying the new version: applying that config first would move
        # every node at once (terraform-provider-talos issue 140).
        kubernetes_upgrade = step(
            "kubernetes-upgrade",
            {
                "KUBERNETES_VERSION": settings.cluster.kubernetes_release,
                "GUARD": settings.cluster.kubernetes_version,
            },
            update=steps.upgrade_kubernetes(str(first.ip)),
            after=[args.bootstrap],
        )

        configs: dict[str, talos.machine.ConfigurationApply] = {}
        for node in settings.nodes:
            configs[node.name] = talos.machine.ConfigurationApply(
                f"{node.name}-staged",
                client_configuration=args.client_configuration,
                machine_configuration_input=args.machine_configurations[node.role],
                node=str(node.ip),
                endpoint=str(node.ip),
                config_patches=args.patches[node.name],
                # Staged: written now, active at the node's next boot, which `reboot` (or an
                # upgrade) below makes, one node at a time. `auto` would reboot every node
                # that needs it at once; `staged_if_needing_reboot` falls back to `auto` when its
                # plan-time dry run cannot reach the node (terraform-provider-talos v0.11.0,
                # pkg/talos/talos_machine_configuration_apply_resource.go, ModifyPlan).
                apply_mode="staged",
                timeouts=talos.machine.TimeoutArgs(
                    create=steps.NODE_TIMEOUT, update=steps.NODE_TIMEOUT
                ),
                opts=pulumi.ResourceOptions(
                    parent=self,
                    # After its install, and after a Kubernetes upgrade (see above).
                    depends_on=[args.installs[node.name], kubernetes_upgrade],
                ),
            )

        last: list[pulumi.CustomResource] = list(configs.values())
        decommissions: list[pulumi.Resource] = []
        for index, node in enumerate([*settings.controlplanes, *settings.workers]):
            ip = str(node.ip)
            upgrade = step(
                f"{node.name}-upgrade",
                {
                    "TALOS_IMAGE": args.installer_image,
                    "TALOS_VERSION": settings.cluster.talos_version,
                    "GUARD": args.installer_image,
                },
                update=steps.upgrade(ip, gate, snapshot=index == 0),
                after=last,
            )
            restart = step(
                f"{node.name}-vm-restart",
                {
                    "VM_ID": args.vm_ids[node.name].apply(str),
                    "VM_SIZE": f"{node.cores} cores, {node.memory_mib} MiB, {node.disk_gib} GiB",
                    "PROXMOX_API": proxmox_api,
                    # Non-empty when Proxmox's certificate is self-signed: curl --insecure.
                    "PROXMOX_INSECURE": "yes" if settings.proxmox.insecure else "",
                    "GUARD": f"{node.cores}/{node.memory_mib}/{node.disk_gib}",
                },
                update=steps.restart_vm(node.proxmox_node, gate),
                after=[upgrade],
            )
            reboot = step(
                f"{node.name}-reboot",
                {
                    "CONFIG_DIGEST": _config_digest(settings, node),
                    "GUARD": _config_digest(settings, node),
                },
                update=steps.reboot(ip, gate),
                after=[restart, configs[node.name]],
            )
            # Stored from the node's creation, so it is in state before the run that removes the
            # node; it depends on the VM (through VM_ID), so the engine deletes it before the VM.
            # Chained: the engine deletes dependents first, so nodes leave one at a time
            # (the last in config order first) instead of all at once.
            decommission = step(
                f"{node.name}-decommission",
                {"VM_ID": args.vm_ids[node.name].apply(str)},
                delete=steps.decommission(node.name, ip, node.is_controlplane, ip),
                after=[args.installs[node.name], *decommissions[-1:]],
            )
            decommissions.append(decommission)
            last = [reboot]

        health = command.local.Command(
            "cluster-health",
            create=steps.script(gate),
            update=steps.script(gate),
            # What it guards: the node set and everything the rolling steps act on.
            environment={
                **cluster_nodes,
                "TALOS_IMAGE": args.installer_image,
                "CONFIGS": hashlib.sha256(
                    "".join(_config_digest(settings, n) for n in settings.nodes).encode()
                ).hexdigest(),
            },
            stdin=stdin,
            interpreter=steps.INTERPRETER,
            opts=pulumi.ResourceOptions(parent=self, depends_on=last),
        )
        if not pulumi.runtime.is_dry_run():
            # Logged once the steps before it exist; the step runs only when what it guards moved.
            pulumi.Output.all(*(resource.id for resource in last)).apply(
                lambda _: pulumi.log.info(_health_wait_message(cps[0]), resource=health)
            )
        self.healthy = health.id
        self.register_outputs({"healthy": self.healthy})


def _config_digest(settings: Settings, node: Node) -> str:
    """The node's patches without the installer image: the image moves by `upgrade`, which
    reboots the node itself, so an upgrade does not add a second reboot."""
    return hashlib.sha256(
        "\n---\n".join(render(node_patches(settings, node, ""))).encode()
    ).hexdigest()


def _health_wait_message(node_ip: str) -> str:
    # `talosctl health` talks to exactly one node (BuildClientEnforceSingleNode in siderolabs/talos
    # cmd/talosctl/cmd/talos/health.go), while the exported talosconfig lists every node.
    return (
        "cluster-health runs when nodes were added, removed, upgraded or reconfigured (and on the "
        f"first deploy); it then waits up to {steps.NODE_TIMEOUT} for the Talos cluster to be "
        "healthy (every node up, etcd, Kubernetes control plane). Watch it with:\n"
        f"talosctl --talosconfig ./talosconfig --nodes {node_ip} health\n"
        "(./talosconfig is exported after the first successful run; before that, the VM console "
        "in Proxmox shows the Talos dashboard.)"
    )


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
