"""Talos machine-config patches for one node, as plain data. Pure: no Pulumi, unit-tested directly.

Everything that has a multi-document form (Talos >= 1.12) uses it; the v1alpha1 document carries
only what has no document of its own in 1.12 and 1.13 (install, kubelet, scheduling, discovery).
"""

from __future__ import annotations

from typing import Any

import yaml

from settings import Node, Settings
from settings.backup import BACKUP_NAMESPACE, ETCD_BACKUP_ROLE

LINK_ALIAS = "net0"
Document = dict[str, Any]


def node_patches(settings: Settings, node: Node, installer_image: str) -> list[Document]:
    """Every patch document for one node, in a stable order."""
    documents = [
        machine_patch(settings, node, installer_image),
        hostname_config(node),
        link_alias_config(node),
        link_config(settings, node),
        resolver_config(settings),
    ]
    if node.is_controlplane and settings.uses_vip:
        documents.append(layer2_vip_config(settings))
    if settings.features.disk_encryption:
        documents.extend(encrypted_volume_configs(settings))
    return documents


def render(documents: list[Document]) -> list[str]:
    """YAML text for the Talos provider: one patch string per document, keys in a fixed order."""
    return [yaml.safe_dump(document, sort_keys=True) for document in documents]


def machine_patch(settings: Settings, node: Node, installer_image: str) -> Document:
    cluster: Document = {"discovery": {"enabled": settings.features.discovery}}
    if node.is_controlplane and not settings.workers:
        # A cluster of control planes only must run workloads on them.
        cluster["allowSchedulingOnControlPlanes"] = True
    patch: Document = {
        "machine": {
            "install": {"disk": settings.cluster.install_disk, "image": installer_image},
            "kubelet": {
                "defaultRuntimeSeccompProfileEnabled": True,
                # Pin the node IP to the node subnet: kubelet must never pick the VIP.
                "nodeIP": {"validSubnets": [str(settings.network.cidr)]},
            },
        },
        "cluster": cluster,
    }
    if node.is_controlplane:
        patch["machine"]["features"] = {"kubernetesTalosAPIAccess": talos_api_access()}
    return patch


def talos_api_access() -> Document:
    """Let the etcd snapshot CronJob reach the Talos API with the etcd-backup role only.

    Control planes only: Talos rejects the feature on workers ("can only be enabled on control
    plane machines", pkg/machinery/config/types/v1alpha1/v1alpha1_validation.go, v1.12 and v1.13),
    and the CRD and API endpoint it serves come from the control planes.
    """
    return {
        "enabled": True,
        "allowedRoles": [ETCD_BACKUP_ROLE],
        "allowedKubernetesNamespaces": [BACKUP_NAMESPACE],
    }


def hostname_config(node: Node) -> Document:
    return {
        "apiVersion": "v1alpha1",
        "kind": "HostnameConfig",
        "auto": "off",
        "hostname": node.name,
    }


def link_alias_config(node: Node) -> Document:
    """Name the NIC by its MAC, so the rest of the config never depends on kernel link names."""
    return {
        "apiVersion": "v1alpha1",
        "kind": "LinkAliasConfig",
        "name": LINK_ALIAS,
        "selector": {"match": f'mac(link.permanent_addr) == "{node.mac.lower()}"'},
    }


def link_config(settings: Settings, node: Node) -> Document:
    prefix = settings.network.cidr.prefixlen
    return {
        "apiVersion": "v1alpha1",
        "kind": "LinkConfig",
        "name": LINK_ALIAS,
        "up": True,
        "addresses": [{"address": f"{node.ip}/{prefix}"}],
        "routes": [{"gateway": str(settings.network.gateway)}],
    }


def resolver_config(settings: Settings) -> Document:
    return {
        "apiVersion": "v1alpha1",
        "kind": "ResolverConfig",
        "nameservers": [{"address": str(server)} for server in settings.network.nameservers],
    }


def layer2_vip_config(settings: Settings) -> Document:
    return {
        "apiVersion": "v1alpha1",
        "kind": "Layer2VIPConfig",
        "name": str(settings.network.vip),
        "link": LINK_ALIAS,
    }


def encrypted_volume_configs(settings: Settings) -> list[Document]:
    """LUKS2 sealed to the TPM; EPHEMERAL also locked to STATE so a new STATE cannot unlock it."""
    tpm = {"checkSecurebootStatusOnEnroll": settings.features.secure_boot}

    def volume(name: str, key: Document) -> Document:
        return {
            "apiVersion": "v1alpha1",
            "kind": "VolumeConfig",
            "name": name,
            "encryption": {"provider": "luks2", "keys": [key]},
        }

    return [
        volume("STATE", {"slot": 0, "tpm": tpm}),
        volume("EPHEMERAL", {"slot": 0, "tpm": tpm, "lockToState": True}),
    ]
