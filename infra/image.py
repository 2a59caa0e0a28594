"""Talos image naming and the Image Factory schematic, as pure functions."""

from __future__ import annotations

import yaml

# Talos's nocloud platform reads the network-config of the Proxmox cloud-init drive (label cidata)
# and so boots on the node's static IP; it ignores Proxmox's #cloud-config user-data and waits in
# maintenance mode for the config apply (siderolabs/talos
# internal/app/machined/pkg/runtime/v1alpha1/platform/nocloud/nocloud.go, Configuration and
# NetworkConfiguration). ISO and installer must both be nocloud: a metal installer boots the
# installed system as metal, which drops the address (siderolabs/talos issue 10949). nocloud images
# exist with secure boot (pkg/machinery/platforms/platforms.go: SecureBootSupported).
PLATFORM = "nocloud"
ARCHITECTURE = "amd64"


def schematic_document(extensions: tuple[str, ...]) -> str:
    """The Image Factory schematic: the official system extensions baked into the image."""
    customization = {"systemExtensions": {"officialExtensions": sorted(extensions)}}
    return yaml.safe_dump({"customization": customization}, sort_keys=True)


def iso_file_name(talos_version: str, schematic_id: str, secure_boot: bool) -> str:
    """Version and schematic in the name: an upgrade downloads a new file beside the running one."""
    flavour = f"{PLATFORM}-secureboot" if secure_boot else PLATFORM
    return f"talos-{talos_version}-{schematic_id[:12]}-{flavour}-{ARCHITECTURE}.iso"
