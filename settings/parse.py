"""Stack config → one validated Settings object. Pure: tests call it without Pulumi."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError
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
    NetworkSettings,
    Node,
    ProxmoxSettings,
    Role,
    Settings,
)
from settings.reader import ConfigKind, Section

NAMESPACE = "homelab"
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

# Without an image section: the guest agent (Proxmox reads each VM's DHCP address through it) and
# nfs-utils (rpcbind and rpc.statd, which NFSv3 mounts with file locking need, as its manifest
# says), the extensions the reference nodes ran. Names as Image Factory lists them
# (siderolabs/extensions v1.12.4: guest-agents/qemu-guest-agent, storage/nfs-utils); checked
# against its catalogue at run time (infra/image.py).
DEFAULT_EXTENSIONS = ("siderolabs/qemu-guest-agent", "siderolabs/nfs-utils")

_SEMVER = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")
_KUBE_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
_MAC = re.compile(r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$")
_SCHEMATIC = re.compile(r"^[0-9a-f]{64}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_NAME = re.compile(
    r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
)
_EXTENSION = re.compile(r"^[a-z0-9-]+/[a-z0-9._-]+$")
SUBSTITUTION_VAR = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def parse_settings(raw: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """Validate everything; raise ConfigError naming key, value and fix on the first problem."""
    top = Section(raw, NAMESPACE, frozenset(TOP_LEVEL_KEYS))
    proxmox_section = Section(top.raw("proxmox"), f"{NAMESPACE}:proxmox", _PROXMOX_KEYS)
    network = _network(Section(top.raw("network"), f"{NAMESPACE}:network", _NETWORK_KEYS))
    cluster = _cluster(Section(top.raw("cluster"), f"{NAMESPACE}:cluster", _CLUSTER_KEYS))
    nodes = _nodes(top.items("nodes"), network, proxmox_section.text("node"))
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
    _check_topology(settings)
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
_NETWORK_KEYS = frozenset({"cidr", "gateway", "nameservers", "vip"})
_IMAGE_KEYS = frozenset({"extensions", "schematicId"})
_FEATURE_KEYS = frozenset({"secureBoot", "diskEncryption", "discovery"})
_NODE_KEYS = frozenset(
    {"name", "ip", "mac", "role", "cores", "memory", "disk", "proxmoxNode", "vmId"}
)
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
    if not _DNS_LABEL.match(name):
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


def _ipv4(key: str, value: Any) -> IPv4Address:
    try:
        return IPv4Address(value)
    except AddressValueError:
        raise ConfigError(
            key, value, "is not an IPv4 address", "write four dotted numbers, e.g. 192.168.20.100"
        ) from None


def _cidr(key: str, value: Any) -> IPv4Network:
    try:
        return IPv4Network(value, strict=True)
    except (AddressValueError, NetmaskValueError, ValueError) as err:
        fix = "write the network address and prefix, e.g. 192.168.20.0/24"
        if "has host bits set" in str(err):
            fix = f"use the network address {IPv4Network(value, strict=False)}"
        raise ConfigError(key, value, "is not an IPv4 network in CIDR form", fix) from None


def _network(section: Section) -> NetworkSettings:
    cidr = section.parsed("cidr", _cidr)
    gateway = section.parsed("gateway", _ipv4)
    _require_inside(section.key("gateway"), gateway, cidr, section.key("cidr"))
    nameservers = tuple(
        _ipv4(f"{section.key('nameservers')}[{index}]", value)
        for index, value in enumerate(section.items("nameservers"))
    )
    if not nameservers:
        raise ConfigError(
            section.key("nameservers"), [], "must name at least one server", "add e.g. 1.1.1.1"
        )
    vip = section.parsed("vip", _ipv4, None)
    if vip is not None:
        _require_inside(section.key("vip"), vip, cidr, section.key("cidr"))
        if vip == gateway:
            raise ConfigError(
                section.key("vip"), str(vip), "is the gateway's address", "pick a free address"
            )
    return NetworkSettings(cidr=cidr, gateway=gateway, nameservers=nameservers, vip=vip)


def _require_inside(key: str, address: IPv4Address, cidr: IPv4Network, cidr_key: str) -> None:
    if address not in cidr or address in (cidr.network_address, cidr.broadcast_address):
        raise ConfigError(
            key,
            str(address),
            f"is not a host address inside {cidr_key} ({cidr})",
            f"use an address in {cidr}, or change {cidr_key}",
        )


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


def _nodes(raw_nodes: list[Any], network: NetworkSettings, default_node: str) -> tuple[Node, ...]:
    if not raw_nodes:
        raise ConfigError(
            f"{NAMESPACE}:nodes", raw_nodes, "must list at least one node", "add a control plane"
        )
    nodes = tuple(
        _node(Section(raw, f"{NAMESPACE}:nodes[{index}]", _NODE_KEYS), network, default_node)
        for index, raw in enumerate(raw_nodes)
    )
    for field, label in (("name", "name"), ("ip", "IP address"), ("mac", "MAC address")):
        _require_unique(nodes, field, label)
    _require_unique([node for node in nodes if node.vm_id is not None], "vm_id", "VM ID")
    return nodes


def _node(section: Section, network: NetworkSettings, default_node: str) -> Node:
    name = section.text("name")
    if not _DNS_LABEL.match(name):
        raise ConfigError(
            section.key("name"),
            name,
            "is not a valid host name",
            "use lowercase letters, digits and '-' (it becomes the VM name and the Talos hostname)",
        )
    ip = section.parsed("ip", _ipv4)
    _require_inside(section.key("ip"), ip, network.cidr, f"{NAMESPACE}:network.cidr")
    for other, other_key in ((network.gateway, "gateway"), (network.vip, "vip")):
        if ip == other:
            raise ConfigError(
                section.key("ip"),
                str(ip),
                f"is the address of {NAMESPACE}:network.{other_key}",
                "give the node its own free address",
            )
    mac = section.text("mac")
    if not _MAC.match(mac):
        raise ConfigError(
            section.key("mac"), mac, "is not a MAC address", "write it as XX:XX:XX:XX:XX:XX"
        )
    role_value = section.text("role")
    try:
        role = Role(role_value)
    except ValueError:
        raise ConfigError(
            section.key("role"), role_value, "is not a node role", "use controlplane or worker"
        ) from None
    vm_id = section.raw("vmId", None)
    if vm_id is not None:
        vm_id = section.integer("vmId", 100, 999_999_999, "Proxmox VM IDs")
    return Node(
        name=name,
        ip=ip,
        mac=mac.upper(),
        role=role,
        cores=section.integer("cores", 1, 16, "CPU cores"),
        memory_mib=section.integer("memory", 2048, None, "MiB of memory"),
        disk_gib=section.integer("disk", 10, None, "GiB of disk"),
        proxmox_node=section.text("proxmoxNode", default_node),
        vm_id=vm_id,
    )


def _require_unique(nodes: Any, field: str, label: str) -> None:
    counts = Counter(str(getattr(node, field)) for node in nodes)
    for index, node in enumerate(nodes):
        value = str(getattr(node, field))
        if counts[value] > 1:
            raise ConfigError(
                f"{NAMESPACE}:nodes[{index}]",
                value,
                f"shares its {label} with another node",
                f"give every node its own {label}",
            )


def _check_topology(settings: Settings) -> None:
    count = len(settings.controlplanes)
    if count % 2 == 0:
        raise ConfigError(
            f"{NAMESPACE}:nodes",
            f"{count} control planes",
            "etcd needs an odd number of control planes (1, 3, 5) to keep quorum",
            "add or remove a node with role: controlplane",
        )
    if count > 1 and settings.network.vip is None and settings.cluster.endpoint_name is None:
        raise ConfigError(
            f"{NAMESPACE}:network.vip",
            None,
            f"{count} control planes need one shared API address",
            f"set {NAMESPACE}:network.vip (a free IP in the node subnet) or "
            f"{NAMESPACE}:cluster.endpoint (a DNS name that resolves to the control planes)",
        )


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
