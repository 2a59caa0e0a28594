"""Proxmox side: the Talos image and one VM per node."""

from infra.component import ProxmoxInfra, ProxmoxInfraArgs

__all__ = ["ProxmoxInfra", "ProxmoxInfraArgs"]
