"""TalosCluster: machine secrets, per-node config apply, one bootstrap, health, kubeconfig."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import pulumi
import pulumiverse_talos as talos
from pulumiverse_talos.machine import outputs as machine_outputs

from cluster.patches import node_patches, render
from settings import Settings

# One budget for every step that waits on a node over a slow home uplink: the config apply, then
# bootstrap (installer pull, disk write, reboot, TPM enrolment, etcd start) and the health check.
# The provider's own default is 10 minutes (terraform-provider-talos v0.11.0, which
# pulumiverse-talos 0.8.1 bridges: `Timeouts.Create(ctx, 10*time.Minute)` in
# pkg/talos/talos_machine_bootstrap_resource.go and talos_machine_configuration_apply_resource.go).
# A Go duration, as the SDK's BootstrapTimeoutsArgs/TimeoutArgs docstrings state.
NODE_TIMEOUT = "30m"

ClientConfigurationT = TypeVar("ClientConfigurationT")


@dataclass(frozen=True)
class TalosClusterArgs:
    settings: Settings
    installer_image: pulumi.Output[str]
    # Each node's static IP (known once its VM exists): its cloud-init drive puts it there from
    # the first boot, so every apply targets it and nothing is read from the guest agent.
    node_addresses: Mapping[str, pulumi.Output[str]]


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
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["talosVersion"]),
        )
        machine_configurations = {
            role: pulumi.Output.secret(
                talos.machine.get_configuration_output(
                    cluster_name=settings.cluster.name,
                    cluster_endpoint=settings.api_endpoint,
                    machine_type=role.value,
                    machine_secrets=secrets.machine_secrets.apply(_machine_secrets),
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
            address = args.node_addresses[node.name]
            patches = args.installer_image.apply(
                lambda image, node=node: render(node_patches(settings, node, image))
            )
            applies[node.name] = talos.machine.ConfigurationApply(
                f"{node.name}-config",
                client_configuration=_client_configuration(
                    secrets, talos.machine.ClientConfigurationArgs
                ),
                machine_configuration_input=machine_configurations[node.role],
                node=address,
                endpoint=address,
                config_patches=patches,
                # Deleting changes nothing on the node, so only create and update get the budget.
                timeouts=talos.machine.TimeoutArgs(create=NODE_TIMEOUT, update=NODE_TIMEOUT),
                opts=child,
            )

        first = settings.bootstrap_node
        bootstrap = talos.machine.Bootstrap(
            "bootstrap",
            node=str(first.ip),
            endpoint=str(first.ip),
            client_configuration=_client_configuration(
                secrets, talos.machine.ClientConfigurationArgs
            ),
            timeouts=talos.machine.BootstrapTimeoutsArgs(create=NODE_TIMEOUT),
            # etcd can only be bootstrapped once the node has its config and runs installed.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[applies[first.name]]),
        )
        kubeconfig = talos.cluster.Kubeconfig(
            "kubeconfig",
            node=str(first.ip),
            endpoint=str(first.ip),
            client_configuration=_client_configuration(
                secrets, talos.cluster.KubeconfigClientConfigurationArgs
            ),
            # Kubernetes certificates exist only after etcd is bootstrapped.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[bootstrap]),
        )
        controlplane_ips = [str(node.ip) for node in settings.controlplanes]
        if pulumi.runtime.is_dry_run():
            # A preview only plans: it must never wait on nodes that may be out of its reach.
            self.kubeconfig = pulumi.Output.secret(kubeconfig.kubeconfig_raw)
        else:
            # Health means every node is configured and etcd is up: wait for all of it.
            waited_for = [bootstrap, *applies.values()]
            pulumi.Output.all(*(resource.id for resource in waited_for)).apply(
                lambda _: pulumi.log.info(_health_wait_message(str(first.ip)), resource=self)
            )
            health = talos.cluster.get_health_output(
                client_configuration=_client_configuration(
                    secrets, talos.cluster.GetHealthClientConfigurationArgs
                ),
                control_plane_nodes=controlplane_ips,
                worker_nodes=[str(node.ip) for node in settings.workers],
                endpoints=controlplane_ips,
                timeouts=talos.cluster.GetHealthTimeoutsArgs(read=NODE_TIMEOUT),
                opts=pulumi.InvokeOutputOptions(parent=self, depends_on=waited_for),
            )
            # Consumers of the kubeconfig (the GitOps half) start only once the cluster is healthy.
            self.kubeconfig = pulumi.Output.secret(
                pulumi.Output.all(kubeconfig.kubeconfig_raw, health.id).apply(lambda pair: pair[0])
            )
        self.talosconfig = pulumi.Output.secret(
            talos.client.get_configuration_output(
                cluster_name=settings.cluster.name,
                client_configuration=_client_configuration(
                    secrets, talos.client.GetConfigurationClientConfigurationArgs
                ),
                endpoints=controlplane_ips,
                nodes=[str(node.ip) for node in settings.nodes],
                opts=invoke,
            ).talos_config
        )
        self.register_outputs({"talosconfig": self.talosconfig, "kubeconfig": self.kubeconfig})


# Why every Talos argument below is built from a typed `...Args` class: invoke arguments travel
# without type information, so the SDK writes a plain dict, or the Secrets resource's output
# object, with the snake_case keys it holds, and the bridged provider reads only its camelCase
# names ("Must set a configuration value for the machineSecrets.secrets.bootstrap_token
# attribute", pulumiverse/pulumi-talos#103). An `@input_type` instance is written with the names
# it declares (pulumi/runtime/rpc.py `serialize_property` -> `_types.input_type_to_dict`).
# Resources would translate a dict through their own Args metadata; they get typed Args too.


def _client_configuration(
    secrets: talos.machine.Secrets, args_type: Callable[..., ClientConfigurationT]
) -> pulumi.Output[ClientConfigurationT]:
    """The cluster's client certificate as the typed input of one resource or invoke.

    Each consumer declares its own class for the same three fields, hence `args_type`.
    """
    return pulumi.Output.secret(
        secrets.client_configuration.apply(
            lambda c: args_type(
                ca_certificate=c.ca_certificate,
                client_certificate=c.client_certificate,
                client_key=c.client_key,
            )
        )
    )


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


def _health_wait_message(node_ip: str) -> str:
    # `talosctl health` talks to exactly one node (BuildClientEnforceSingleNode in siderolabs/talos
    # cmd/talosctl/cmd/talos/health.go), while the exported talosconfig lists every node.
    return (
        f"Waiting up to {NODE_TIMEOUT} for the Talos cluster to be healthy (every node up, etcd, "
        "Kubernetes control plane). Watch it with:\n"
        f"talosctl --talosconfig ./talosconfig --nodes {node_ip} health\n"
        "(./talosconfig is exported after the first successful run; before that, the VM console "
        "in Proxmox shows the Talos dashboard.)"
    )


def _kubernetes_version(settings: Settings) -> str:
    """Talos takes the bare version number; the config accepts it with or without a leading v."""
    return settings.cluster.kubernetes_version.removeprefix("v")
