"""Stack config for an N-node cluster, derived from the committed one so only the size differs."""

from __future__ import annotations

import copy
from typing import Any

from harness.environment import committed_config

SIZES = (1, 3, 10, 30)
# A typical homelab Proxmox cluster: nodes are spread round-robin, one ISO download per host.
PROXMOX_HOSTS = 3
VIP = "192.168.20.99"
FIRST_HOST_OCTET = 100


def split(nodes: int) -> tuple[int, int]:
    """(control planes, workers): half the nodes are control planes, rounded to the odd number
    etcd needs (n // 2 | 1: 1→1, 3→1, 10→5, 30→15), the rest are workers."""
    if nodes < 1:
        raise ValueError(f"a cluster needs at least one node, not {nodes}")
    controlplanes = (nodes // 2) | 1
    return controlplanes, nodes - controlplanes


def cluster_config(nodes: int) -> dict[str, Any]:
    """The committed stack config with `nodes` nodes; 1 node is the committed config itself."""
    config = copy.deepcopy(committed_config())
    if nodes == 1:
        return config
    controlplanes, _ = split(nodes)
    base = config["nodes"][0]
    config["network"]["vip"] = VIP
    config["nodes"] = [
        {
            **base,
            "name": _name(i, controlplanes),
            "role": "controlplane" if i < controlplanes else "worker",
            "ip": f"192.168.20.{FIRST_HOST_OCTET + i}",
            # The mocks derive each VM's DHCP address from the last octet: keep them distinct.
            "mac": f"BC:24:11:CA:FE:{i + 1:02X}",
            "proxmoxNode": f"pve{i % PROXMOX_HOSTS + 1}",
        }
        for i in range(nodes)
    ]
    return config


def _name(index: int, controlplanes: int) -> str:
    if index < controlplanes:
        return f"talos-cp-{index + 1}"
    return f"talos-worker-{index - controlplanes + 1}"
