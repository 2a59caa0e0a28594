"""Stack config → one validated Settings object. Pure: tests call it without Pulumi."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from settings.backup import parse_backup
from settings.compatibility import KUBERNETES_BY_TALOS_MINOR, KubernetesRange, known_minors
from settings.errors import ConfigError
from settings.model import (
    DERIVED_SETTING_KEYS,
    ClusterSettings,
    Features,
    GitOpsSettings,
    ImageSettings,
    ProxmoxSettings,
    Settings,
)
from settings.nodes import DNS_LABEL, NETWORK_KEYS, check_topology, parse_network, parse_nodes
from settings.reader import NAMESPACE, ConfigKind, Section

# Every key of the namespace, with how the CLI passes its value (settings/reader.py, ConfigKind).
TOP_LEVEL_KEYS: Mapping[str, ConfigKind] = MappingProxyType(
    {"secretsFile": ConfigKind.TEXT, "clusterSettings": ConfigKind.STRUCTURED}
    | dict.fromkeys(
        ("proxmox", "cluster", "network", "image", "features", "nodes", "gitops", "backup"),
        ConfigKind.STRUCTURED,
    )
)
# The first Talos minor with the multi-document network, hostname and volume config we emit.
MIN_TALOS_MINOR = (1, 12)

# Without an image section: the guest agent (Proxmox's clean shutdown and VM status use it) and
# nfs-utils (rpcbind and rpc.statd, which NFSv3 mounts with file locking need, as its manifest
# says), the extensions the reference nodes ran. Names as Image Factory lists them
# (siderolabs/extensions v1.12.4: guest-agents/qemu-guest-agent, storage/nfs-utils); checked
# against its catalogue at run time (infra/image.py).
DEFAULT_EXTENSIONS = ("siderolabs/qemu-guest-agent", "siderolabs/nfs-utils")

_SEMVER = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")
_KUBE_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
_SCHEMATIC = re.compile(r"^[0-9a-f]{64}$")
_DNS_NAME = re.compile(
    r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
)
_EXTENSION = re.compile(r"^[a-z0-9-]+/[a-z0-9._-]+$")
SUBSTITUTION_VAR = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def parse_settings(raw: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """Validate everything; raise ConfigError naming key, value and fix on the first problem."""
    top = Section(raw, NAMESPACE, frozenset(TOP_LEVEL_KEYS))
    proxmox_section = Section(top.raw("proxmox"), f"{NAMESPACE}:proxmox", _PROXMOX_KEYS)
    network = parse_network(Section(top.raw("network"), f"{NAMESPACE}:network", NETWORK_KEYS))
    cluster = _cluster(Section(top.raw("cluster"), f"{NAMESPACE}:cluster", _CLUSTER_KEYS))
    nodes = parse_nodes(top.items("nodes"), network, proxmox_section.text("node"))
    settings = Settings(
        proxmox=_proxmox(proxmox_section),
        cluster=cluster,
        network=network,
        image=_image(Section(top.raw("image", {}), f"{NAMESPACE}:image", _IMAGE_KEYS)),
        features=_features(
            Section(top.raw("features", {}), f"{NAMESPACE}:features", _FEATURE_KEYS)
        ),
        nodes=nodes,
        gitops=_gitops(
            Section(top.raw("gitops"), f"{NAMESPACE}:gitops", _GITOPS_KEYS),
            top.raw("clusterSettings", {}),
            env,
        ),
        secrets_file=Path(top.text("secretsFile", "secrets.enc.yaml")),
        backup=parse_backup(top.raw("backup", {}), top.raw("clusterSettings", {}), NAMESPACE),
    )
    check_topology(settings)
    return settings


_PROXMOX_KEYS = frozenset(
    {
        "endpoint",
        "insecure",
        "node",
        "isoDatastore",
        "isoDatastoreShared",
        "vmDatastore",
        "bridge",
        "scsiController",
    }
)
# The SCSI controller types the bpg provider accepts for scsi_hardware (SCSIHardwareValidator in
# bpg/terraform-provider-proxmox proxmoxtf/resource/vm/validators.go; the same list as Proxmox's
# scsihw). Talos's Proxmox guide for 1.12 says "VirtIO SCSI", i.e. virtio-scsi-pci: with
# "VirtIO SCSI single" the install can hang (siderolabs/talos issue 11173, siderolabs/docs PR 164).
SCSI_CONTROLLERS = (
    "virtio-scsi-pci",
    "virtio-scsi-single",
    "lsi",
    "lsi53c810",
    "megasas",
    "pvscsi",
)
_CLUSTER_KEYS = frozenset({"name", "talosVersion", "kubernetesVersion", "endpoint", "installDisk"})
_IMAGE_KEYS = frozenset({"extensions", "schematicId"})
_FEATURE_KEYS = frozenset({"secureBoot", "diskEncryption", "discovery"})
_GITOPS_KEYS = frozenset(
    {"fluxVersion", "repository", "branch", "knownHosts", "httpsUsername", "ageKeyFile"}
)


def _proxmox(section: Section) -> ProxmoxSettings:
    endpoint = section.text("endpoint")
    if not endpoint.startswith("https://"):
        raise ConfigError(
            section.key("endpoint"),
            endpoint,
            "must be an https:// URL (the Proxmox API only speaks TLS)",
            "write it as https://<host>:8006/",
        )
    scsi_controller = section.text("scsiController", SCSI_CONTROLLERS[0])
    if scsi_controller not in SCSI_CONTROLLERS:
        raise ConfigError(
            section.key("scsiController"),
            scsi_controller,
            "is not a Proxmox SCSI controller type",
            f"use one of {', '.join(SCSI_CONTROLLERS)} ({SCSI_CONTROLLERS[0]} is what Talos's "
            "Proxmox guide asks for)",
        )
    return ProxmoxSettings(
        endpoint=endpoint,
        insecure=section.flag("insecure", False),
        iso_datastore=section.text("isoDatastore", "local"),
        vm_datastore=section.text("vmDatastore", "local-lvm"),
        bridge=section.text("bridge", "vmbr0"),
        scsi_controller=scsi_controller,
        iso_datastore_shared=section.flag("isoDatastoreShared", False),
    )


def _cluster(section: Section) -> ClusterSettings:
    name = section.text("name")
    if not DNS_LABEL.match(name):
        raise ConfigError(
            section.key("name"), name, "is not a DNS label", "use lowercase letters, digits and '-'"
        )
    talos_version = section.text("talosVersion")
    match = _SEMVER.match(talos_version)
    if not match:
        raise ConfigError(
            section.key("talosVersion"),
            talos_version,
            "is not a Talos release",
            "write it as vX.Y.Z",
        )
    talos_minor = (int(match[1]), int(match[2]))
    if talos_minor < MIN_TALOS_MINOR:
        raise ConfigError(
            section.key("talosVersion"),
            talos_version,
            "predates Talos v1.12, the first release with the multi-document config this program "
            "writes",
            "use v1.12.0 or newer",
        )
    kubernetes = KUBERNETES_BY_TALOS_MINOR.get(talos_minor)
    if kubernetes is None:
        raise ConfigError(
            section.key("talosVersion"),
            talos_version,
            "is a Talos minor whose supported Kubernetes range this program does not know "
            f"(known: {known_minors()})",
            "use a release of a known minor, or add this minor's range (Talos source, "
            "pkg/machinery/compatibility) to settings/compatibility.py",
        )
    kubernetes_version = _kubernetes_version(section, talos_version, kubernetes)
    endpoint_name = section.text("endpoint", None)
    if endpoint_name is not None and not _DNS_NAME.match(endpoint_name):
        raise ConfigError(
            section.key("endpoint"),
            endpoint_name,
            "is not a DNS name",
            "give a host name such as k8s.home.arpa (no scheme, no port)",
        )
    install_disk = section.text("installDisk", "/dev/sda")
    if not install_disk.startswith("/dev/"):
        raise ConfigError(
            section.key("installDisk"), install_disk, "is not a device path", "use e.g. /dev/sda"
        )
    return ClusterSettings(
        name=name,
        talos_version=talos_version,
        kubernetes_version=kubernetes_version,
        endpoint_name=endpoint_name,
        install_disk=install_disk,
    )


def _kubernetes_version(section: Section, talos_version: str, supported: KubernetesRange) -> str:
    """Always explicit: unset, the Talos provider fills in the default of the Talos machinery it
    was built with (pulumiverse-talos 0.8.1 -> terraform-provider-talos v0.11.0 -> machinery
    v1.13.0 -> Kubernetes 1.36.0), which a Talos 1.12 node rejects."""
    key = section.key("kubernetesVersion")
    talos = f"Talos {talos_version} ({section.key('talosVersion')})"
    if not section.has("kubernetesVersion"):
        raise ConfigError(
            key,
            None,
            "is required: left unset, the Talos provider uses its own default (Kubernetes 1.36.0), "
            f"which {talos} may not run",
            f"set it to a Kubernetes release from {supported.describe()}, the range {talos} "
            "supports",
        )
    version = section.text("kubernetesVersion")
    match = _KUBE_VERSION.match(version)
    if not match:
        raise ConfigError(
            key, version, "is not a Kubernetes release", "write it as vX.Y.Z, e.g. v1.35.0"
        )
    if not supported.admits((int(match[1]), int(match[2]), int(match[3]))):
        raise ConfigError(
            key,
            version,
            f"is outside the Kubernetes range {talos} supports ({supported.describe()})",
            f"pick a Kubernetes release from {supported.describe()}, or move "
            f"{section.key('talosVersion')} to a Talos minor that supports {version}",
        )
    return version


def _image(section: Section) -> ImageSettings:
    extensions = section.items("extensions", list(DEFAULT_EXTENSIONS))
    for index, extension in enumerate(extensions):
        if not isinstance(extension, str) or not _EXTENSION.match(extension):
            raise ConfigError(
                f"{section.key('extensions')}[{index}]",
                extension,
                "is not an Image Factory extension name",
                "write it as <vendor>/<name>, e.g. siderolabs/qemu-guest-agent",
            )
    schematic_id = section.text("schematicId", None)
    if schematic_id is not None and not _SCHEMATIC.match(schematic_id):
        raise ConfigError(
            section.key("schematicId"),
            schematic_id,
            "is not an Image Factory schematic ID (64 lowercase hex characters)",
            "copy the ID from factory.talos.dev, or remove it to build one from the extension list",
        )
    return ImageSettings(extensions=tuple(extensions), schematic_id=schematic_id)


def _features(section: Section) -> Features:
    features = Features(
        secure_boot=section.flag("secureBoot", True),
        disk_encryption=section.flag("diskEncryption", True),
        discovery=section.flag("discovery", False),
    )
    # Talos seals the LUKS2 key to the TPM under a policy signed by the PCR signing key, whose
    # public half it reads from the booted UKI's .pcrpkey section (talos v1.12.4:
    # internal/pkg/secureboot/tpm2/seal.go -> policy.go, constants.PCRPublicKey). Only the signed
    # secure-boot UKI carries that section (internal/pkg/uki/uki.go: BuildSigned adds it, Build
    # does not), so on the plain image enrolment fails with "failed to read pcr signing public key".
    if features.disk_encryption and not features.secure_boot:
        raise ConfigError(
            section.key("secureBoot"),
            False,
            f"cannot be combined with {section.key('diskEncryption')}: true (Talos seals the disk "
            "key to the TPM with the PCR signing key only the secure-boot image carries)",
            f"set {section.key('secureBoot')}: true, or {section.key('diskEncryption')}: false",
        )
    return features


def _gitops(section: Section, raw_settings: Any, env: Mapping[str, str]) -> GitOpsSettings:
    repository = section.text("repository")
    if not repository.startswith(("ssh://", "https://")):
        raise ConfigError(
            section.key("repository"),
            repository,
            "must be an ssh:// or https:// Git URL",
            "write e.g. ssh://git@github.com/<you>/<repo>.git (deploy key) "
            "or https://github.com/<you>/<repo>.git (token from the secrets file)",
        )
    known_hosts = section.text("knownHosts", "")
    if repository.startswith("ssh://") and not known_hosts:
        raise ConfigError(
            section.key("knownHosts"),
            None,
            "is required for an ssh:// repository (Flux verifies the Git host's key)",
            "paste the host's line from `ssh-keyscan <host>`",
        )
    flux_version = section.text("fluxVersion")
    if not _SEMVER.match(flux_version):
        raise ConfigError(
            section.key("fluxVersion"), flux_version, "is not a Flux release", "write it as vX.Y.Z"
        )
    settings_section = Section(
        raw_settings, f"{NAMESPACE}:clusterSettings", frozenset(raw_settings)
    )
    cluster_settings = tuple(
        (key, _substitution_value(settings_section, key)) for key in sorted(raw_settings)
    )
    age_key_file = env.get("SOPS_AGE_KEY_FILE") or section.text("ageKeyFile", ".age-key.txt")
    return GitOpsSettings(
        flux_version=flux_version,
        repository=repository,
        branch=section.text("branch", "main"),
        known_hosts=known_hosts,
        https_username=section.text("httpsUsername", "git"),
        age_key_file=Path(age_key_file),
        cluster_settings=cluster_settings,
    )


def _substitution_value(section: Section, key: str) -> str:
    if key in DERIVED_SETTING_KEYS:
        raise ConfigError(
            section.key(key),
            section.raw(key, None),
            "is set by the program from the rest of the stack config",
            "remove it from clusterSettings",
        )
    if not SUBSTITUTION_VAR.match(key):
        raise ConfigError(
            section.key(key),
            key,
            "is not a Flux substitution variable name",
            "use UPPER_CASE letters, digits and '_'",
        )
    # Strings only: an unquoted number reaches the program already retyped by the CLI's YAML
    # reader (0755 as 493, 1.10 as 1.1), so the text the user meant cannot be recovered.
    return section.text(key)
