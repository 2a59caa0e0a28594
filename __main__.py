"""Composition root: config + SOPS secrets → settings → Proxmox → Talos → GitOps → outputs."""

import os

import pulumi

from cluster import TalosCluster, TalosClusterArgs
from gitops import GitOps, GitOpsArgs
from infra import ProxmoxInfra, ProxmoxInfraArgs
from settings import (
    NAMESPACE,
    TOP_LEVEL_KEYS,
    ConfigError,
    decrypt_secrets_file,
    parse_settings,
    secret_values,
)
from settings.escrow import (
    load_certificate,
    load_deploy_key,
    load_machine_secrets,
    write_import_file,
)

config = pulumi.Config(NAMESPACE)
try:
    settings = parse_settings(
        {key: config.get_object(key) for key in TOP_LEVEL_KEYS if config.get(key) is not None},
        os.environ,
    )
    secrets = secret_values(decrypt_secrets_file(settings.secrets_file), settings, os.environ)
    escrowed = load_machine_secrets(settings.backup.escrow_file, "homelab:backup.escrowFile")
    deploy_key_escrow = (
        load_deploy_key(settings.backup.deploy_key_file, "homelab:backup.deployKeyFile")
        if settings.gitops.uses_ssh
        else None
    )
    certificate_escrow = load_certificate(
        settings.backup.certificate_file, "homelab:backup.certificateFile"
    )
    if settings.backup.restore_from is not None and escrowed is None:
        raise ConfigError(
            "homelab:backup.restoreFrom",
            str(settings.backup.restore_from),
            "needs the escrowed Talos secrets the snapshot was taken under "
            f"({settings.backup.escrow_file} does not exist)",
            "restore the escrow file from git",
        )
    if settings.backup.adopt_secrets and escrowed is None:
        raise ConfigError(
            "homelab:backup.adoptSecrets",
            True,
            f"needs the escrow file {settings.backup.escrow_file}, which does not exist",
            "restore it from git (or set homelab:backup.escrowFile), or set adoptSecrets: false "
            "to create a new cluster",
        )
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
        escrowed=escrowed,
        # Adopt: import the escrowed secrets instead of generating new ones.
        adopt_from=write_import_file(escrowed)
        if settings.backup.adopt_secrets and escrowed
        else None,
    ),
)
gitops = GitOps(
    "gitops",
    GitOpsArgs(
        settings=settings,
        secrets=secrets,
        kubeconfig=cluster.kubeconfig,
        deploy_key_escrow=deploy_key_escrow,
        certificate_escrow=certificate_escrow,
    ),
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
