"""Composition root: config + SOPS secrets → settings → Proxmox → Talos → GitOps → outputs."""

import os

import pulumi

from cluster import TalosCluster, TalosClusterArgs
from gitops import GitOps, GitOpsArgs
from gitops.substitutions import check_substitutions
from infra import ProxmoxInfra, ProxmoxInfraArgs
from settings import (
    NAMESPACE,
    TOP_LEVEL_KEYS,
    ConfigError,
    decrypt_secrets_file,
    parse_settings,
    secret_values,
)

config = pulumi.Config(NAMESPACE)
try:
    settings = parse_settings(
        {key: config.get_object(key) for key in TOP_LEVEL_KEYS if config.get(key) is not None},
        os.environ,
    )
    decrypted = decrypt_secrets_file(settings.secrets_file)
    secrets = secret_values(decrypted, settings, os.environ)
    # Every ${VAR} of kubernetes/ gets a real value Flux can substitute safely.
    check_substitutions(settings.flux_settings, decrypted, settings.secrets_file)
except ConfigError as error:
    # One clean message, no traceback, and nothing registered.
    raise pulumi.RunError(str(error)) from None

infra = ProxmoxInfra(
    "proxmox", ProxmoxInfraArgs(settings=settings, api_token=secrets.proxmox_api_token)
)
cluster = TalosCluster(
    "talos",
    TalosClusterArgs(
        settings=settings,
        installer_image=infra.installer_image,
        dhcp_addresses=infra.dhcp_addresses,
    ),
)
gitops = GitOps(
    "gitops", GitOpsArgs(settings=settings, secrets=secrets, kubeconfig=cluster.kubeconfig)
)

pulumi.export("vmIds", infra.vm_ids)
pulumi.export("nodeIps", {node.name: str(node.ip) for node in settings.nodes})
pulumi.export("controlPlaneIps", [str(node.ip) for node in settings.controlplanes])
pulumi.export("schematicId", infra.schematic_id)
pulumi.export("installerImage", infra.installer_image)
pulumi.export("talosconfig", pulumi.Output.secret(cluster.talosconfig))
pulumi.export("kubeconfig", pulumi.Output.secret(cluster.kubeconfig))
if gitops.deploy_key_public is not None:
    pulumi.export("deployKeyPublic", gitops.deploy_key_public)
