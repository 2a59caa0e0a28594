"""ProxmoxInfra: Talos image from Image Factory, its ISO per Proxmox storage, a VM per node."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_proxmoxve as proxmoxve
import pulumiverse_talos as talos

from infra.image import (
    ARCHITECTURE,
    PLATFORM,
    iso_file_name,
    schematic_document,
)
from infra.vm import create_vm
from settings import Settings


@dataclass(frozen=True)
class ProxmoxInfraArgs:
    settings: Settings
    api_token: pulumi.Output[str]
    # settings.cluster.talos_version once the move to it is checked (settings/upgrades.py).
    talos_version: pulumi.Output[str]
    # image.extensions once Image Factory's catalogue has each (infra.catalogue_checked_extensions).
    extensions: tuple[str, ...]


class ProxmoxInfra(pulumi.ComponentResource):
    schematic_id: pulumi.Output[str]
    installer_image: pulumi.Output[str]
    vm_ids: dict[str, pulumi.Output[int]]
    # Each node's static IP, known once its VM exists: what every Talos call targets.
    node_addresses: dict[str, pulumi.Output[str]]
    vms: dict[str, pulumi.Resource]

    def __init__(
        self, name: str, args: ProxmoxInfraArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:infra:ProxmoxInfra", name, None, opts)
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)

        provider = proxmoxve.Provider(
            "proxmox",
            endpoint=settings.proxmox.endpoint,
            api_token=args.api_token,
            insecure=settings.proxmox.insecure,
            opts=child,
        )
        on_proxmox = pulumi.ResourceOptions(parent=self, provider=provider)

        self.schematic_id = self._schematic_id(settings, args.extensions, child)
        urls = talos.imagefactory.get_urls_output(
            talos_version=args.talos_version,
            schematic_id=self.schematic_id,
            platform=PLATFORM,
            architecture=ARCHITECTURE,
            opts=pulumi.InvokeOutputOptions(parent=self),
        ).urls
        secure_boot = settings.features.secure_boot
        self.installer_image = urls.apply(
            lambda u: u.installer_secureboot if secure_boot else u.installer
        )
        iso_url = urls.apply(lambda u: u.iso_secureboot if secure_boot else u.iso)
        file_name = self.schematic_id.apply(
            lambda schematic: iso_file_name(settings.cluster.talos_version, schematic, secure_boot)
        )

        iso_ids: dict[str, pulumi.Output[str]] = {}
        hosts = dict.fromkeys(_iso_host(settings, node) for node in settings.proxmox_nodes)
        for proxmox_node in hosts:
            iso = proxmoxve.download.File(
                f"talos-iso-{proxmox_node}",
                node_name=proxmox_node,
                datastore_id=settings.proxmox.iso_datastore,
                content_type="iso",
                url=iso_url,
                file_name=file_name,
                # A file of this name already in the datastore (one kept from an earlier stack,
                # see retain_on_delete) is deleted and downloaded again instead of failing the
                # create (bpg fwprovider/nodes/resource_download_file.go, Create). On a shared
                # storage a second download would delete the first: see _iso_host.
                overwrite_unmanaged=True,
                # VMs keep referencing the ISO they were created with (cdrom changes are ignored),
                # so an upgrade must not delete it from under them.
                opts=pulumi.ResourceOptions.merge(
                    on_proxmox, pulumi.ResourceOptions(retain_on_delete=True)
                ),
            )
            iso_ids[proxmox_node] = iso.id

        self.vm_ids = {}
        self.node_addresses = {}
        self.vms = {}
        for node in settings.nodes:
            iso_id = iso_ids[_iso_host(settings, node.proxmox_node)]
            vm = create_vm(settings, node, iso_id, on_proxmox)
            self.vm_ids[node.name] = vm.vm_id
            # The static IP from config, released once the VM exists so that the config apply
            # waits for the machine it configures. Never an address the guest agent reports.
            self.node_addresses[node.name] = vm.id.apply(lambda _, ip=str(node.ip): ip)
            self.vms[node.name] = vm

        self.register_outputs(
            {
                "schematicId": self.schematic_id,
                "installerImage": self.installer_image,
                "vmIds": self.vm_ids,
            }
        )

    def _schematic_id(
        self, settings: Settings, extensions: tuple[str, ...], opts: pulumi.ResourceOptions
    ) -> pulumi.Output[str]:
        if settings.image.schematic_id:
            return pulumi.Output.from_input(settings.image.schematic_id)
        schematic = talos.imagefactory.Schematic(
            "talos-schematic", schematic=schematic_document(extensions), opts=opts
        )
        return schematic.id


def _iso_host(settings: Settings, proxmox_node: str) -> str:
    """The Proxmox node whose ISO download a VM on proxmox_node boots from.

    Each node downloads to its own storage; a shared storage holds one file for all of them, and a
    download per node would race (each create deletes the file another node just wrote, see
    overwrite_unmanaged), so the first node used downloads it once for every VM.
    """
    return settings.proxmox_nodes[0] if settings.proxmox.iso_datastore_shared else proxmox_node
