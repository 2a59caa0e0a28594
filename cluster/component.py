"""TalosCluster: machine secrets, per-node config apply, one bootstrap, health, kubeconfig."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumiverse_talos as talos

from cluster.patches import node_patches, render
from settings import Role, Settings


@dataclass(frozen=True)
class TalosClusterArgs:
    settings: Settings
    installer_image: pulumi.Output[str]
    # The VMs by node name: bootstrap follows the VM of a lone control plane (see below).
    vms: Mapping[str, pulumi.Resource]


class TalosCluster(pulumi.ComponentResource):
    talosconfig: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    # What the day-two steps (cluster/rollout.py) build on.
    client_configuration: pulumi.Output[Any]
    machine_configurations: dict[Role, pulumi.Output[str]]
    installs: dict[str, pulumi.Resource]
    bootstrap: pulumi.Resource

    def __init__(
        self, name: str, args: TalosClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:cluster:TalosCluster", name, None, opts)
        settings = args.settings
        invoke = pulumi.InvokeOutputOptions(parent=self)

        secrets = talos.machine.Secrets(
            "machine-secrets",
            talos_version=settings.cluster.talos_version,
            # The cluster's CA and tokens are made once; a Talos upgrade must never rotate them.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["talosVersion"]),
        )
        client_configuration = _client_configuration(secrets)
        machine_configurations = {
            role: pulumi.Output.secret(
                talos.machine.get_configuration_output(
                    cluster_name=settings.cluster.name,
                    cluster_endpoint=settings.api_endpoint,
                    machine_type=role.value,
                    machine_secrets=secrets.machine_secrets,  # type: ignore[arg-type]  # same shape
                    # The config's feature contract stays at the version the cluster was made
                    # with (secrets ignore later versions): an upgrade swaps the OS, not features.
                    talos_version=secrets.talos_version,
                    kubernetes_version=_kubernetes_version(settings),
                    docs=False,
                    examples=False,
                    opts=invoke,
                ).machine_configuration
            )
            for role in sorted({node.role for node in settings.nodes})
        }

        applies: dict[str, talos.machine.ConfigurationApply] = {}
        for node in settings.nodes:
            patches = args.installer_image.apply(
                lambda image, node=node: render(node_patches(settings, node, image))
            )
            applies[node.name] = talos.machine.ConfigurationApply(
                f"{node.name}-config",
                client_configuration=client_configuration,
                machine_configuration_input=machine_configurations[node.role],
                node=str(node.ip),
                endpoint=str(node.ip),
                config_patches=patches,
                # The install, from maintenance mode, which accepts only auto/reboot/try (siderolabs
                # /talos v1.12.4, internal/app/maintenance/server.go, ApplyConfiguration). Later
                # changes go through the staged apply and rolling reboots of cluster/rollout.py,
                # never through this one: it would reboot every node needing it at once.
                apply_mode="auto",
                opts=pulumi.ResourceOptions(
                    parent=self,
                    ignore_changes=["configPatches", "machineConfigurationInput"],
                    # The static IP is known up front: only the VM's existence orders the apply.
                    depends_on=[args.vms[node.name]],
                    # A new VM (replaced) boots into maintenance mode again: install it again.
                    replace_with=[args.vms[node.name]],
                ),
            )

        first = settings.bootstrap_node
        bootstrap = talos.machine.Bootstrap(
            "bootstrap",
            node=str(first.ip),
            endpoint=str(first.ip),
            client_configuration=client_configuration,
            opts=pulumi.ResourceOptions(
                parent=self,
                # The node only runs etcd once its config is applied and it rebooted.
                depends_on=[applies[first.name]],
                # A lone control plane's new VM starts an empty etcd: bootstrap it again. With
                # several, the new VM joins the others' etcd, and a second bootstrap would fail:
                # the provider retries every error but InvalidArgument until its timeout, with no
                # AlreadyExists case (terraform-provider-talos v0.11.0,
                # pkg/talos/talos_machine_bootstrap_resource.go, Create).
                replace_with=[args.vms[first.name]] if len(settings.controlplanes) == 1 else None,
            ),
        )
        kubeconfig = talos.cluster.Kubeconfig(
            "kubeconfig",
            node=str(first.ip),
            endpoint=str(first.ip),
            client_configuration=client_configuration,
            # Kubernetes certificates exist only after etcd is bootstrapped.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[bootstrap]),
        )
        controlplane_ips = [str(node.ip) for node in settings.controlplanes]
        # Health is a step of cluster/rollout.py that runs only when what it guards changes.
        self.kubeconfig = pulumi.Output.secret(kubeconfig.kubeconfig_raw)
        self.talosconfig = pulumi.Output.secret(
            talos.client.get_configuration_output(
                cluster_name=settings.cluster.name,
                client_configuration=client_configuration,
                endpoints=controlplane_ips,
                nodes=[str(node.ip) for node in settings.nodes],
                opts=invoke,
            ).talos_config
        )
        self.client_configuration = client_configuration
        self.machine_configurations = machine_configurations
        self.installs = dict(applies)
        self.bootstrap = bootstrap
        self.register_outputs({"talosconfig": self.talosconfig, "kubeconfig": self.kubeconfig})


def _client_configuration(secrets: talos.machine.Secrets) -> pulumi.Output[Any]:
    """The client certificate as the plain mapping every Talos resource and invoke accepts.

    Each takes its own generated type of the same three fields, hence the Any.
    """
    return pulumi.Output.secret(
        secrets.client_configuration.apply(
            lambda c: {
                "ca_certificate": c.ca_certificate,
                "client_certificate": c.client_certificate,
                "client_key": c.client_key,
            }
        )
    )


def _kubernetes_version(settings: Settings) -> str | None:
    """Talos takes the bare version number; the config accepts it with or without a leading v."""
    version = settings.cluster.kubernetes_version
    return version.removeprefix("v") if version else None
