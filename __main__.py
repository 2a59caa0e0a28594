"""Composition root: config + SOPS secrets → settings → Proxmox → Talos → GitOps → outputs."""

import os

import pulumi

from cluster import TalosCluster, TalosClusterArgs
from cluster.rollout import DayTwo, DayTwoArgs
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
from settings.upgrades import check_moves, deployed_record

config = pulumi.Config(NAMESPACE)
try:
    settings = parse_settings(
        {key: config.get_object(key) for key in TOP_LEVEL_KEYS if config.get(key) is not None},
        os.environ,
    )
    secrets = secret_values(decrypt_secrets_file(settings.secrets_file), settings, os.environ)
except ConfigError as error:
    # One clean message, no traceback, and nothing registered.
    raise pulumi.RunError(str(error)) from None


def _checked_talos_version(deployed: object) -> str:
    try:
        check_moves(settings, deployed if isinstance(deployed, dict) else None)
    except ConfigError as error:
        raise pulumi.RunError(str(error)) from None
    return settings.cluster.talos_version


# What the cluster runs: this stack's own `deployed` output of its last successful run (see
# settings/upgrades.py). The Talos version reaches the image, and so every node step, only
# through this check: a refused move stops the run before anything touches a node.
own_stack = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
talos_version = (
    pulumi.StackReference("deployed", stack_name=own_stack)
    .get_output("deployed")
    .apply(_checked_talos_version)
)
infra = ProxmoxInfra(
    "proxmox",
    ProxmoxInfraArgs(
        settings=settings, api_token=secrets.proxmox_api_token, talos_version=talos_version
    ),
)
cluster = TalosCluster(
    "talos",
    TalosClusterArgs(settings=settings, installer_image=infra.installer_image, vms=infra.vms),
)
day_two = DayTwo(
    "day-two",
    DayTwoArgs(
        settings=settings,
        installer_image=infra.installer_image,
        client_configuration=cluster.client_configuration,
        machine_configurations=cluster.machine_configurations,
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
gitops = GitOps("gitops", GitOpsArgs(settings=settings, secrets=secrets, kubeconfig=kubeconfig))

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
