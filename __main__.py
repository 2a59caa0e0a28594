"""Composition root: config + SOPS secrets → settings → Proxmox → Talos → GitOps → outputs."""

import os
from typing import Any

import pulumi
import pulumi.runtime.config as runtime_config

from cluster import TalosCluster, TalosClusterArgs
from cluster.rollout import DayTwo, DayTwoArgs
from gitops import GitOps, GitOpsArgs
from gitops.substitutions import check_substitutions
from infra import ProxmoxInfra, ProxmoxInfraArgs, catalogue_checked_extensions
from settings import (
    NAMESPACE,
    TOP_LEVEL_KEYS,
    ConfigError,
    ConfigKind,
    decrypt_secrets_file,
    parse_settings,
    secret_values,
)
from settings.backup import check_snapshot
from settings.escrow import (
    Decrypter,
    load_certificate,
    load_deploy_key,
    load_machine_secrets,
    serve_import,
)
from settings.upgrades import check_moves, deployed_record


def stack_config() -> dict[str, Any]:
    """Every `homelab:` key the CLI passed, each read with the getter its kind needs.

    The CLI passes a string raw and other values as JSON (settings/reader.py ConfigKind), so a
    string such as secretsFile is read with get and mappings and lists with get_object. Unknown
    keys are read as text for parse_settings to reject by name. The whole map: the language
    host's shim hands PULUMI_CONFIG to set_all_config (pulumi/pulumi
    sdk/python/cmd/pulumi-language-python-exec), which the SDK keeps in
    pulumi.runtime.config.CONFIG; get_config falls back to PULUMI_CONFIG itself (get_config_env).
    The SDK has no public way to list keys (pulumi 3.272.0, pulumi/runtime/config.py).
    """
    config = pulumi.Config(NAMESPACE)
    prefix = f"{NAMESPACE}:"
    passed = {*runtime_config.CONFIG.get(), *runtime_config.get_config_env()}
    values: dict[str, Any] = {}
    for name in sorted(key.removeprefix(prefix) for key in passed if key.startswith(prefix)):
        if TOP_LEVEL_KEYS.get(name) is not ConfigKind.STRUCTURED:
            values[name] = config.get(name)
            continue
        try:
            values[name] = config.get_object(name)
        except pulumi.config.ConfigTypeError:
            raise ConfigError(
                f"{prefix}{name}",
                config.get(name),
                "must be a YAML mapping or list",
                f"write {prefix}{name} as in the committed Pulumi.homelab.yaml",
            ) from None
    return values


try:
    settings = parse_settings(stack_config(), os.environ)
    decrypted = decrypt_secrets_file(
        settings.secrets_file, settings.gitops.age_key_file, os.environ
    )
    secrets = secret_values(decrypted, settings, os.environ)
    # Every ${VAR} of kubernetes/ gets a real value Flux can substitute safely.
    check_substitutions(settings.flux_settings, decrypted, settings.secrets_file)
    # The one check that asks a provider: Image Factory's catalogue for the Talos version.
    extensions = catalogue_checked_extensions(settings)
    # The escrow files (README "Backup and restore"), decrypted as the secrets file is.
    escrow_sops = Decrypter(settings.gitops.age_key_file, os.environ)
    escrowed = load_machine_secrets(
        settings.backup.escrow_file, "homelab:backup.escrowFile", escrow_sops
    )
    deploy_key_escrow = (
        load_deploy_key(
            settings.backup.deploy_key_file, "homelab:backup.deployKeyFile", escrow_sops
        )
        if settings.gitops.uses_ssh
        else None
    )
    certificate_escrow = load_certificate(
        settings.backup.certificate_file, "homelab:backup.certificateFile", escrow_sops
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


def _checked_talos_version(deployed: object) -> str:
    record = deployed if isinstance(deployed, dict) else None
    try:
        check_moves(settings, record)
        # The restore's snapshot is needed only until the restoring run succeeded.
        check_snapshot(settings.backup, record, "homelab:backup.restoreFrom")
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
        settings=settings,
        api_token=secrets.proxmox_api_token,
        talos_version=talos_version,
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
        escrowed=escrowed,
        # Adopt: import the escrowed secrets instead of generating new ones.
        adopt_from=serve_import(escrowed) if settings.backup.adopt_secrets and escrowed else None,
    ),
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
gitops = GitOps(
    "gitops",
    GitOpsArgs(
        settings=settings,
        secrets=secrets,
        kubeconfig=kubeconfig,
        deploy_key_escrow=deploy_key_escrow,
        certificate_escrow=certificate_escrow,
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
