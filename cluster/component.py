"""TalosCluster: machine secrets, each node's install, one bootstrap, kubeconfig and talosconfig.

What happens after the install (staged config, rolling reboots and upgrades, health gates,
decommissioning) is cluster/rollout.py's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pulumi
import pulumiverse_talos as talos
from pulumiverse_talos.machine import outputs as machine_outputs

from cluster.escrow import SecretsEscrow, SecretsEscrowArgs
from cluster.patches import node_patches, render
from cluster.restore import recover_bootstrap
from cluster.steps import NODE_TIMEOUT
from settings import Role, Settings
from settings.escrow import Escrow

ClientConfigurationT = TypeVar("ClientConfigurationT")
OutputT = TypeVar("OutputT")


@dataclass(frozen=True)
class TalosClusterArgs:
    settings: Settings
    installer_image: pulumi.Output[str]
    # Each node's static IP (known once its VM exists): its cloud-init drive puts it there from
    # the first boot, so every apply targets it and nothing is read from the guest agent.
    node_addresses: Mapping[str, pulumi.Output[str]]
    # The VMs by node name: a replaced VM boots into maintenance mode again (see below).
    vms: Mapping[str, pulumi.Resource]
    # The escrow file's secrets, when it exists (settings/escrow.py); with adopt_from, the
    # import ID (a FIFO path, see settings/escrow.py serve_import) to adopt them from.
    escrowed: Escrow | None = None
    adopt_from: str | None = None


class TalosCluster(pulumi.ComponentResource):
    talosconfig: pulumi.Output[str]
    # Available once bootstrap ran; cluster/rollout.py says when the cluster is healthy.
    kubeconfig: pulumi.Output[str]
    # What the day-two steps (cluster/rollout.py) build on.
    client_configuration: pulumi.Output[talos.machine.ClientConfigurationArgs]
    machine_configurations: dict[Role, pulumi.Output[str]]
    # Each node's rendered patches: the install applies them, the staged apply keeps them current.
    patches: dict[str, pulumi.Output[list[str]]]
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
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=["talosVersion"], import_=args.adopt_from
            ),
        )
        escrow = SecretsEscrow(
            "escrow",
            SecretsEscrowArgs(settings.backup.escrow_file, secrets.machine_secrets, args.escrowed),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Nothing reaches a node unless the state and the escrow file hold the same secrets.
        checked = escrow.checked_bundle
        machine_configurations = {
            role: pulumi.Output.secret(
                talos.machine.get_configuration_output(
                    cluster_name=settings.cluster.name,
                    cluster_endpoint=settings.api_endpoint,
                    machine_type=role.value,
                    machine_secrets=_after(checked, secrets.machine_secrets).apply(
                        _machine_secrets
                    ),
                    # The config's feature contract stays at the version the cluster was made
                    # with (secrets ignore later versions): an upgrade swaps the OS, not features.
                    talos_version=secrets.talos_version.apply(
                        lambda v: _contract_version(v, settings)
                    ),
                    kubernetes_version=settings.cluster.kubernetes_release,
                    docs=False,
                    examples=False,
                    opts=invoke,
                ).machine_configuration
            )
            for role in sorted({node.role for node in settings.nodes})
        }

        client_configuration = _client_configuration(
            secrets, talos.machine.ClientConfigurationArgs, checked
        )
        applies: dict[str, talos.machine.ConfigurationApply] = {}
        self.patches = {
            node.name: args.installer_image.apply(
                lambda image, node=node: render(node_patches(settings, node, image))
            )
            for node in settings.nodes
        }
        for node in settings.nodes:
            address = args.node_addresses[node.name]
            applies[node.name] = talos.machine.ConfigurationApply(
                f"{node.name}-config",
                client_configuration=client_configuration,
                machine_configuration_input=machine_configurations[node.role],
                node=address,
                endpoint=address,
                config_patches=self.patches[node.name],
                # The install, from maintenance mode, which accepts only auto/reboot/try (siderolabs
                # /talos v1.12.4, internal/app/maintenance/server.go, ApplyConfiguration). Later
                # changes go through the staged apply and rolling reboots of cluster/rollout.py,
                # never through this one: it would reboot every node needing it at once.
                apply_mode="auto",
                # Deleting changes nothing on the node, so only create and update get the budget.
                timeouts=talos.machine.TimeoutArgs(create=NODE_TIMEOUT, update=NODE_TIMEOUT),
                opts=pulumi.ResourceOptions(
                    parent=self,
                    ignore_changes=["configPatches", "machineConfigurationInput"],
                    # A new VM (replaced) boots into maintenance mode again: install it again.
                    replace_with=[args.vms[node.name]],
                ),
            )

        first = settings.bootstrap_node
        controlplane_ips = [str(node.ip) for node in settings.controlplanes]
        self.talosconfig = pulumi.Output.secret(
            talos.client.get_configuration_output(
                cluster_name=settings.cluster.name,
                client_configuration=_client_configuration(
                    secrets, talos.client.GetConfigurationClientConfigurationArgs, checked
                ),
                endpoints=controlplane_ips,
                nodes=[str(node.ip) for node in settings.nodes],
                opts=invoke,
            ).talos_config
        )
        # A lone control plane's new VM starts an empty etcd: bootstrap (or recover) it again.
        # With several, the new VM joins the others' etcd, and a second bootstrap would fail:
        # the provider retries every error but InvalidArgument until its timeout, with no
        # AlreadyExists case (terraform-provider-talos v0.11.0,
        # pkg/talos/talos_machine_bootstrap_resource.go, Create).
        rebootstrap = [args.vms[first.name]] if len(settings.controlplanes) == 1 else None
        bootstrap: pulumi.CustomResource
        if settings.backup.restore_from is not None:
            # The provider's Bootstrap has no recovery option: see cluster/restore.py.
            bootstrap = recover_bootstrap(
                self,
                settings,
                settings.backup.restore_from,
                self.talosconfig,
                after=[applies[node.name] for node in settings.controlplanes],
                replace_with=rebootstrap,
            )
        else:
            bootstrap = talos.machine.Bootstrap(
                "bootstrap",
                node=str(first.ip),
                endpoint=str(first.ip),
                client_configuration=client_configuration,
                timeouts=talos.machine.BootstrapTimeoutsArgs(create=NODE_TIMEOUT),
                opts=pulumi.ResourceOptions(
                    parent=self,
                    # etcd can be bootstrapped only once the node has its config and is installed.
                    depends_on=[applies[first.name]],
                    replace_with=rebootstrap,
                ),
            )
        kubeconfig = talos.cluster.Kubeconfig(
            "kubeconfig",
            node=str(first.ip),
            endpoint=str(first.ip),
            client_configuration=_client_configuration(
                secrets, talos.cluster.KubeconfigClientConfigurationArgs, checked
            ),
            # Kubernetes certificates exist only after etcd is bootstrapped.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[bootstrap]),
        )
        # Health is cluster/rollout.py's `cluster-health` step: it runs when what it guards moves.
        self.kubeconfig = pulumi.Output.secret(kubeconfig.kubeconfig_raw)
        self.client_configuration = client_configuration
        self.machine_configurations = machine_configurations
        self.installs = dict(applies)
        self.bootstrap = bootstrap
        self.register_outputs({"talosconfig": self.talosconfig, "kubeconfig": self.kubeconfig})


# Why every Talos argument below is built from a typed `...Args` class: invoke arguments travel
# without type information, so the SDK writes a plain dict, or the Secrets resource's output
# object, with the snake_case keys it holds, and the bridged provider reads only its camelCase
# names ("Must set a configuration value for the machineSecrets.secrets.bootstrap_token
# attribute", pulumiverse/pulumi-talos#103). An `@input_type` instance is written with the names
# it declares (pulumi/runtime/rpc.py `serialize_property` -> `_types.input_type_to_dict`).
# Resources would translate a dict through their own Args metadata; they get typed Args too.


def _client_configuration(
    secrets: talos.machine.Secrets,
    args_type: Callable[..., ClientConfigurationT],
    checked: pulumi.Output[Any],
) -> pulumi.Output[ClientConfigurationT]:
    """The cluster's client certificate as the typed input of one resource or invoke, resolved
    only once `checked` (the escrow check) did.

    Each consumer declares its own class for the same three fields, hence `args_type`.
    """
    return pulumi.Output.secret(
        _after(checked, secrets.client_configuration).apply(
            lambda c: args_type(
                ca_certificate=c.ca_certificate,
                client_certificate=c.client_certificate,
                client_key=c.client_key,
            )
        )
    )


def _after(gate: pulumi.Output[Any], value: pulumi.Output[OutputT]) -> pulumi.Output[OutputT]:
    """`value`, resolved only once `gate` did. Chained rather than Output.all, which hands the
    apply plain dicts instead of the resource's typed output classes."""
    return gate.apply(lambda _: value)


def _contract_version(recorded: str, settings: Settings) -> str:
    """An imported Secrets resource records talos_version v1.3 (v1.2 with AES-CBC), as the
    provider's ImportState does (terraform-provider-talos v0.11.0
    pkg/talos/talos_machine_secrets_resource.go); no cluster of this program predates v1.12, so
    such a marker means "adopted": use the configured version."""
    return settings.cluster.talos_version if recorded in ("v1.2", "v1.3") else recorded


def _machine_secrets(
    result: machine_outputs.MachineSecretsResult,
) -> talos.machine.MachineSecretsArgs:
    """The Secrets resource's output, field by field, as getConfiguration's typed input."""
    certs = result.certs
    return talos.machine.MachineSecretsArgs(
        certs=talos.machine.CertificatesArgs(
            etcd=_certificate(certs.etcd),
            k8s=_certificate(certs.k8s),
            k8s_aggregator=_certificate(certs.k8s_aggregator),
            k8s_serviceaccount=talos.machine.KeyArgs(key=certs.k8s_serviceaccount.key),
            os=_certificate(certs.os),
        ),
        cluster=talos.machine.ClusterArgs(id=result.cluster.id, secret=result.cluster.secret),
        secrets=talos.machine.KubernetesSecretsArgs(
            bootstrap_token=result.secrets.bootstrap_token,
            secretbox_encryption_secret=result.secrets.secretbox_encryption_secret,
            aescbc_encryption_secret=result.secrets.aescbc_encryption_secret,
        ),
        trustdinfo=talos.machine.TrustdInfoArgs(token=result.trustdinfo.token),
    )


def _certificate(pair: machine_outputs.CertificateResult) -> talos.machine.CertificateArgs:
    return talos.machine.CertificateArgs(cert=pair.cert, key=pair.key)
