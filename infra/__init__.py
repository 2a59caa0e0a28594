"""Proxmox side: the Talos image and one VM per node."""

from infra.component import ProxmoxInfra, ProxmoxInfraArgs
from infra.image import catalogue_checked_extensions

__all__ = ["ProxmoxInfra", "ProxmoxInfraArgs", "catalogue_checked_extensions"]
