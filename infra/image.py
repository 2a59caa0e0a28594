"""Talos image naming and the Image Factory schematic, as pure functions."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import pulumiverse_talos as talos
import yaml

from settings import NAMESPACE, ConfigError, Settings

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


def checked_extensions(
    extensions: tuple[str, ...], catalogue: Sequence[str], talos_version: str, key: str
) -> tuple[str, ...]:
    """The extension list, once every name is one Image Factory offers for this Talos version.

    Image Factory takes any schematic but refuses to build an image naming an extension it does
    not have ("official extension ... is not available for Talos version", image-factory
    internal/profile/profile.go), which would only surface as a failed ISO download.
    """
    # Compared without the vendor: every official name shares "siderolabs/", which would make
    # any two names look alike.
    by_short_name = {name.split("/", 1)[-1]: name for name in catalogue}
    for index, name in enumerate(extensions):
        if name not in catalogue:
            short = name.split("/", 1)[-1]
            matches = difflib.get_close_matches(short, list(by_short_name), n=3, cutoff=0.5)
            closest = [by_short_name[match] for match in matches]
            raise ConfigError(
                f"{key}[{index}]",
                name,
                f"is not in Image Factory's extension catalogue for Talos {talos_version}",
                (f"use {' or '.join(closest)}" if closest else "use a name from the catalogue")
                + f" (all: https://factory.talos.dev/version/{talos_version}/extensions/official)",
            )
    return extensions


def iso_file_name(talos_version: str, schematic_id: str, secure_boot: bool) -> str:
    """Version and schematic in the name: an upgrade downloads a new file beside the running one."""
    flavour = f"{PLATFORM}-secureboot" if secure_boot else PLATFORM
    return f"talos-{talos_version}-{schematic_id[:12]}-{flavour}-{ARCHITECTURE}.iso"


def catalogue_checked_extensions(settings: Settings) -> tuple[str, ...]:
    """The configured extensions, once Image Factory's catalogue for the Talos version has them.

    Part of validation (`__main__.py` calls it before anything is registered): the invoke's
    blocking form answers at once, so a wrong name stops the run like any config error, one
    message and no schematic, ISO or VM. The whole catalogue is read (no filters): the closest
    real names come from it. A given schematic ID needs no check: the list is not used then, the
    ID's content is fixed by whoever registered it with Image Factory.
    """
    if settings.image.schematic_id:
        return ()
    catalogue = talos.imagefactory.get_extensions_versions(
        talos_version=settings.cluster.talos_version
    ).extensions_infos
    return checked_extensions(
        settings.image.extensions,
        [info.name for info in catalogue],
        settings.cluster.talos_version,
        f"{NAMESPACE}:image.extensions",
    )
