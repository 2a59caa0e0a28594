"""Talos image naming and the Image Factory schematic, as pure functions."""

from __future__ import annotations

import yaml

# The installer and ISO are the generic bare-metal ones; the qemu guest agent comes as an extension.
PLATFORM = "metal"
ARCHITECTURE = "amd64"


def schematic_document(extensions: tuple[str, ...]) -> str:
    """The Image Factory schematic: the official system extensions baked into the image."""
    customization = {"systemExtensions": {"officialExtensions": sorted(extensions)}}
    return yaml.safe_dump({"customization": customization}, sort_keys=True)


def iso_file_name(talos_version: str, schematic_id: str, secure_boot: bool) -> str:
    """Version and schematic in the name: an upgrade downloads a new file beside the running one."""
    flavour = "secureboot" if secure_boot else "metal"
    return f"talos-{talos_version}-{schematic_id[:12]}-{flavour}-{ARCHITECTURE}.iso"
