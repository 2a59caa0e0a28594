"""The node subnet and the nodes: addresses, names, roles, sizes, and the etcd topology rules."""

from __future__ import annotations

import re
from collections import Counter
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError
from typing import Any

from settings.errors import ConfigError
from settings.model import NetworkSettings, Node, Role, Settings
from settings.reader import NAMESPACE, Section

NETWORK_KEYS = frozenset({"cidr", "gateway", "nameservers", "vip"})
NODE_KEYS = frozenset(
    {"name", "ip", "mac", "role", "cores", "memory", "disk", "proxmoxNode", "vmId"}
)
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_MAC = re.compile(r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$")


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


def parse_network(section: Section) -> NetworkSettings:
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


def parse_nodes(
    raw_nodes: list[Any], network: NetworkSettings, default_node: str
) -> tuple[Node, ...]:
    if not raw_nodes:
        raise ConfigError(
            f"{NAMESPACE}:nodes", raw_nodes, "must list at least one node", "add a control plane"
        )
    nodes = tuple(
        _node(Section(raw, f"{NAMESPACE}:nodes[{index}]", NODE_KEYS), network, default_node)
        for index, raw in enumerate(raw_nodes)
    )
    for field, label in (("name", "name"), ("ip", "IP address"), ("mac", "MAC address")):
        _require_unique(nodes, field, label)
    _require_unique([node for node in nodes if node.vm_id is not None], "vm_id", "VM ID")
    return nodes


def _node(section: Section, network: NetworkSettings, default_node: str) -> Node:
    name = section.text("name")
    if not DNS_LABEL.match(name):
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


def check_topology(settings: Settings) -> None:
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
