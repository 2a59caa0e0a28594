"""The validated settings: frozen dataclasses built once from stack config and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pulumi

from settings.backup import BACKUP_SETTING_KEYS, BackupSettings

API_PORT = 6443
# cluster-settings keys the program derives itself; a user may not set them in clusterSettings.
DERIVED_SETTING_KEYS = ("API_ADDRESS", "CLUSTER_NAME", "NODE_CIDR", *BACKUP_SETTING_KEYS)


class Role(StrEnum):
    CONTROLPLANE = "controlplane"
    WORKER = "worker"


@dataclass(frozen=True)
class ProxmoxSettings:
    endpoint: str
    insecure: bool
    iso_datastore: str
    vm_datastore: str
    bridge: str
    # Proxmox's scsihw for every VM's disk controller (see settings/parse.py SCSI_CONTROLLERS).
    scsi_controller: str
    # One storage seen by every Proxmox node (NFS, CephFS): the ISO is downloaded to it once.
    iso_datastore_shared: bool


@dataclass(frozen=True)
class ClusterSettings:
    name: str
    talos_version: str
    kubernetes_version: str
    endpoint_name: str | None
    install_disk: str

    @property
    def kubernetes_release(self) -> str:
        """The version number alone, as Talos takes it (the setting may carry a leading v)."""
        return self.kubernetes_version.removeprefix("v")


@dataclass(frozen=True)
class NetworkSettings:
    cidr: IPv4Network
    gateway: IPv4Address
    nameservers: tuple[IPv4Address, ...]
    vip: IPv4Address | None


@dataclass(frozen=True)
class ImageSettings:
    extensions: tuple[str, ...]
    schematic_id: str | None


@dataclass(frozen=True)
class Features:
    secure_boot: bool
    disk_encryption: bool
    discovery: bool


@dataclass(frozen=True)
class Node:
    name: str
    ip: IPv4Address
    mac: str
    role: Role
    cores: int
    memory_mib: int
    disk_gib: int
    proxmox_node: str
    vm_id: int | None

    @property
    def is_controlplane(self) -> bool:
        return self.role is Role.CONTROLPLANE


@dataclass(frozen=True)
class GitOpsSettings:
    flux_version: str
    repository: str
    branch: str
    known_hosts: str
    https_username: str
    age_key_file: Path
    cluster_settings: tuple[tuple[str, str], ...]

    @property
    def uses_ssh(self) -> bool:
        return self.repository.startswith("ssh://")


@dataclass(frozen=True)
class SecretValues:
    """Decrypted secrets, each wrapped as a Pulumi secret: no plain copy leaves the loader."""

    proxmox_api_token: pulumi.Output[str]
    cluster_secrets: pulumi.Output[dict[str, str]]
    git_https_token: pulumi.Output[str] | None
    # The operator's age private key, for Flux to decrypt SOPS files in git.
    age_key: pulumi.Output[str]


@dataclass(frozen=True)
class Settings:
    proxmox: ProxmoxSettings
    cluster: ClusterSettings
    network: NetworkSettings
    image: ImageSettings
    features: Features
    nodes: tuple[Node, ...]
    gitops: GitOpsSettings
    secrets_file: Path
    backup: BackupSettings

    @property
    def controlplanes(self) -> tuple[Node, ...]:
        return tuple(node for node in self.nodes if node.is_controlplane)

    @property
    def workers(self) -> tuple[Node, ...]:
        return tuple(node for node in self.nodes if not node.is_controlplane)

    @property
    def bootstrap_node(self) -> Node:
        """The first control plane: the one node etcd is bootstrapped on."""
        return self.controlplanes[0]

    @property
    def uses_vip(self) -> bool:
        """A shared API address is only worth having when several control planes can hold it."""
        return self.network.vip is not None and len(self.controlplanes) > 1

    @property
    def api_host(self) -> str:
        if self.cluster.endpoint_name:
            return self.cluster.endpoint_name
        if self.uses_vip:
            return str(self.network.vip)
        return str(self.bootstrap_node.ip)

    @property
    def api_endpoint(self) -> str:
        return f"https://{self.api_host}:{API_PORT}"

    @property
    def flux_settings(self) -> dict[str, str]:
        """Every cluster-settings value Flux substitutes into kubernetes/: user-set and derived."""
        derived = {
            "API_ADDRESS": self.api_host,
            "CLUSTER_NAME": self.cluster.name,
            "NODE_CIDR": str(self.network.cidr),
            **self.backup.flux_settings,
        }
        return dict(sorted({**dict(self.gitops.cluster_settings), **derived}.items()))

    @property
    def proxmox_nodes(self) -> tuple[str, ...]:
        """Proxmox nodes hosting at least one VM, in first-use order (one ISO download each)."""
        return tuple(dict.fromkeys(node.proxmox_node for node in self.nodes))
