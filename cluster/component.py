"""TalosCluster: machine secrets, per-node config apply, one bootstrap, health, kubeconfig."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumiverse_talos as talos

from cluster.escrow import SecretsEscrow, SecretsEscrowArgs
from cluster.patches import node_patches, render
from cluster.restore import recover_bootstrap
from settings import Settings
from settings.escrow import Escrow, remove_import_file


@dataclass(frozen=True)
class TalosClusterArgs:
    settings: Settings
    installer_image: pulumi.Output[str]
    # Where each node answers before its config is applied: the address DHCP gave its VM.
    dhcp_addresses: Mapping[str, pulumi.Output[str]]
    # The escrow file's secrets, when it exists; with adopt_from, the plaintext copy to import.
    escrowed: Escrow | None = None
    adopt_from: str | None = None


class TalosCluster(pulumi.ComponentResource):
    talosconfig: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]

    def __init__(
        self, name: str, args: TalosClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:cluster:TalosCluster", name, None, opts)
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)

        secrets = talos.machine.Secrets(
            "machine-secrets",
            talos_version=settings.cluster.talos_version,
            # The cluster's CA and tokens are made once; a Talos upgrade must never rotate them.
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=["talosVersion"], import_=args.adopt_from
            ),
        )
        if args.adopt_from is not None:
            secrets.id.apply(lambda _, path=args.adopt_from: remove_import_file(path))
        escrow = SecretsEscrow(
            "escrow",
            SecretsEscrowArgs(settings.backup.escrow_file, secrets.machine_secrets, args.escrowed),
            opts=child,
        )
        # Nothing reaches a node unless the state and the escrow file hold the same secrets.
        client_configuration = _client_configuration(secrets, escrow.checked_bundle)
        machine_configurations = {
            role: pulumi.Output.secret(
                talos.machine.get_configuration_output(
                    cluster_name=settings.cluster.name,
                    cluster_endpoint=settings.api_endpoint,
                    machine_type=role.value,
                    machine_secrets=pulumi.Output.all(  # type: ignore[arg-type]  # same shape
                        secrets.machine_secrets, escrow.checked_bundle
                    ).apply(lambda pair: pair[0]),
                    # The config's feature contract stays at the version the cluster was made
                    # with (secrets ignore later versions): an upgrade swaps the OS, not features.
                    talos_version=secrets.talos_version.apply(
                        lambda v: _contract_version(v, settings)
                    ),
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
            dhcp_address = args.dhcp_addresses[node.name]
            patches = args.installer_image.apply(
                lambda image, node=node: render(node_patches(settings, node, image))
            )
            applies[node.name] = talos.machine.ConfigurationApply(
                f"{node.name}-config",
                client_configuration=client_configuration,
                machine_configuration_input=machine_configurations[node.role],
                node=dhcp_address,
                endpoint=dhcp_address,
                config_patches=patches,
                opts=child,
            )

        first = settings.bootstrap_node
        bootstrap: pulumi.Resource
        if settings.backup.restore_from is not None:
            bootstrap = recover_bootstrap(
                self,
                settings,
                settings.backup.restore_from,
                client_configuration,
                [applies[node.name] for node in settings.controlplanes],
            )
        else:
            bootstrap = talos.machine.Bootstrap(
                "bootstrap",
                node=str(first.ip),
                endpoint=str(first.ip),
                client_configuration=client_configuration,
                # The node only answers at its static IP once its config is applied and rebooted.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[applies[first.name]]),
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
        if pulumi.runtime.is_dry_run():
            # A preview only plans: it must never wait on nodes that may be out of its reach.
            self.kubeconfig = pulumi.Output.secret(kubeconfig.kubeconfig_raw)
        else:
            health = talos.cluster.get_health_output(
                client_configuration=client_configuration,
                control_plane_nodes=controlplane_ips,
                worker_nodes=[str(node.ip) for node in settings.workers],
                endpoints=controlplane_ips,
                timeouts={"read": "20m"},
                # Health means every node is configured and etcd is up: wait for all of it.
                opts=pulumi.InvokeOutputOptions(
                    parent=self, depends_on=[bootstrap, *applies.values()]
                ),
            )
            # Consumers of the kubeconfig (the GitOps half) start only once the cluster is healthy.
            self.kubeconfig = pulumi.Output.secret(
                pulumi.Output.all(kubeconfig.kubeconfig_raw, health.id).apply(lambda pair: pair[0])
            )
        self.talosconfig = pulumi.Output.secret(
            talos.client.get_configuration_output(
                cluster_name=settings.cluster.name,
                client_configuration=client_configuration,
                endpoints=controlplane_ips,
                nodes=[str(node.ip) for node in settings.nodes],
                opts=invoke,
            ).talos_config
        )
        self.register_outputs({"talosconfig": self.talosconfig, "kubeconfig": self.kubeconfig})


def _contract_version(recorded: str, settings: Settings) -> str:
    """An imported Secrets resource records talos_version v1.3 (v1.2 with AES-CBC), as the
    provider's ImportState does (terraform-provider-talos talos_machine_secrets_resource.go);
    no cluster of this program predates v1.12, so such a marker means "adopted": use the
    configured version."""
    return settings.cluster.talos_version if recorded in ("v1.2", "v1.3") else recorded


def _client_configuration(
    secrets: talos.machine.Secrets, checked: pulumi.Output[Any]
) -> pulumi.Output[Any]:
    """The client certificate as the plain mapping every Talos resource and invoke accepts.

    Each takes its own generated type of the same three fields, hence the Any.
    """
    plain = secrets.client_configuration.apply(
        lambda c: {
            "ca_certificate": c.ca_certificate,
            "client_certificate": c.client_certificate,
            "client_key": c.client_key,
        }
    )
    return pulumi.Output.secret(pulumi.Output.all(plain, checked).apply(lambda pair: pair[0]))


def _kubernetes_version(settings: Settings) -> str | None:
    """Talos takes the bare version number; the config accepts it with or without a leading v."""
    version = settings.cluster.kubernetes_version
    return version.removeprefix("v") if version else None
