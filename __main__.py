"""Composition root: config + SOPS secrets → settings → Proxmox → Talos → GitOps → outputs."""

import os

import pulumi

from cluster import TalosCluster, TalosClusterArgs
from cluster.deployed import checked_talos_version
from cluster.rollout import DayTwo, DayTwoArgs
from gitops import GitOps, GitOpsArgs
from gitops.substitutions import check_substitutions
from infra import ProxmoxInfra, ProxmoxInfraArgs, catalogue_checked_extensions
from settings import ConfigError, decrypt_secrets_file, parse_settings, secret_values
from settings.escrow import load_escrow_files, serve_import
from settings.stack import read_stack_config
from settings.upgrades import deployed_record

try:
    settings = parse_settings(read_stack_config(), os.environ)
    decrypted = decrypt_secrets_file(
        settings.secrets_file, settings.gitops.age_key_file, os.environ
    )
    secrets = secret_values(decrypted, settings, os.environ)
    # Every ${VAR} of kubernetes/ gets a real value Flux can substitute safely.
    check_substitutions(settings.flux_settings, decrypted, settings.secrets_file)
    # The one check that asks a provider: Image Factory's catalogue for the Talos version.
    extensions = catalogue_checked_extensions(settings)
    # The escrow files (README "Backup and restore"), decrypted as the secrets file is.
    escrow = load_escrow_files(settings, os.environ)
except ConfigError as error:
    # One clean message, no traceback, and nothing registered.
    raise pulumi.RunError(str(error)) from None

infra = ProxmoxInfra(
    "proxmox",
    ProxmoxInfraArgs(
        settings=settings,
        api_token=secrets.proxmox_api_token,
        talos_version=checked_talos_version(settings),
        extensions=extensions,
    ),
)
cluster = TalosCluster(
    "talos",
    TalosClusterArgs(
        settings=settings,
        installer_image=infra.installer_image,
        node_addresses=infra.node_addresses,
        vms=infra.vms,
        escrowed=escrow.machine_secrets,
        # Adopt: import the escrowed secrets instead of generating new ones.
        adopt_from=(
            serve_import(escrow.machine_secrets)
            if settings.backup.adopt_secrets and escrow.machine_secrets
            else None
        ),
    ),
)
day_two = DayTwo(
    "day-two",
    DayTwoArgs(
        settings=settings,
        installer_image=infra.installer_image,
        client_configuration=cluster.client_configuration,
        machine_configurations=cluster.machine_configurations,
        patches=cluster.patches,
        installs=cluster.installs,
        bootstrap=cluster.bootstrap,
        talosconfig=cluster.talosconfig,
        kubeconfig=cluster.kubeconfig,
        proxmox_api_token=secrets.proxmox_api_token,
        vm_ids=infra.vm_ids,
    ),
)
# The GitOps half starts once the cluster is healthy after whatever this run changed.
kubeconfig = pulumi.Output.secret(
    pulumi.Output.all(cluster.kubeconfig, day_two.healthy).apply(lambda pair: pair[0])
)
gitops = GitOps(
    "gitops",
    GitOpsArgs(
        settings=settings,
        secrets=secrets,
        kubeconfig=kubeconfig,
        deploy_key_escrow=escrow.deploy_key,
        certificate_escrow=escrow.certificate,
    ),
)

pulumi.export("deployed", deployed_record(settings))
pulumi.export("vmIds", infra.vm_ids)
pulumi.export("nodeIps", {node.name: str(node.ip) for node in settings.nodes})
pulumi.export("controlPlaneIps", [str(node.ip) for node in settings.controlplanes])
pulumi.export("schematicId", infra.schematic_id)
pulumi.export("installerImage", infra.installer_image)
pulumi.export("talosconfig", pulumi.Output.secret(cluster.talosconfig))
pulumi.export("kubeconfig", pulumi.Output.secret(cluster.kubeconfig))
if gitops.deploy_key_public is not None:
    pulumi.export("deployKeyPublic", gitops.deploy_key_public)
