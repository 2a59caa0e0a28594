"""The VM definition for one Talos node: every Proxmox setting in one place."""

from __future__ import annotations

import pulumi
import pulumi_proxmoxve as proxmoxve

from settings import Node, Settings

# A new ISO (Talos upgrade, new schematic) must never touch a running VM: it boots from its disk.
VM_IGNORED_CHANGES = ["cdrom"]


def vm_tags(settings: Settings, node: Node) -> list[str]:
    """Proxmox stores tags lower-case and sorted; giving them that way keeps re-runs diff-free."""
    return sorted({"talos", "kubernetes", settings.cluster.name, node.role.value})


def create_vm(
    settings: Settings,
    node: Node,
    iso_file_id: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> proxmoxve.VmLegacy:
    datastore = settings.proxmox.vm_datastore
    return proxmoxve.VmLegacy(
        node.name,
        name=node.name,
        node_name=node.proxmox_node,
        vm_id=node.vm_id,
        tags=vm_tags(settings, node),
        description=(
            f"Talos {node.role.value} node of Kubernetes cluster '{settings.cluster.name}'. "
            "Managed by Pulumi: change Pulumi.homelab.yaml, not this VM."
        ),
        bios="ovmf",
        machine="q35",
        operating_system=proxmoxve.VmLegacyOperatingSystemArgs(type="l26"),
        # The empty disk falls through to the ISO on first boot; the installed system boots after.
        boot_orders=["scsi0", "ide2"],
        scsi_hardware="virtio-scsi-single",
        stop_on_destroy=True,
        on_boot=True,
        # A size change stays pending until cluster/rollout.py restarts the VMs one at a time
        # (the default true would restart every VM at once, and the control planes with them).
        reboot_after_update=False,
        agent=proxmoxve.VmLegacyAgentArgs(enabled=True, trim=True),
        cpu=proxmoxve.VmLegacyCpuArgs(type="host", cores=node.cores),
        memory=proxmoxve.VmLegacyMemoryArgs(dedicated=node.memory_mib),
        efi_disk=proxmoxve.VmLegacyEfiDiskArgs(
            datastore_id=datastore,
            file_format="raw",
            type="4m",
            # Empty key store = secure boot setup mode: the Talos ISO enrolls its own keys.
            pre_enrolled_keys=False,
        ),
        tpm_state=proxmoxve.VmLegacyTpmStateArgs(datastore_id=datastore, version="v2.0"),
        disks=[
            proxmoxve.VmLegacyDiskArgs(
                interface="scsi0",
                datastore_id=datastore,
                size=node.disk_gib,
                file_format="raw",
                iothread=True,
                discard="on",
                ssd=True,
            )
        ],
        cdrom=proxmoxve.VmLegacyCdromArgs(file_id=iso_file_id, interface="ide2"),
        network_devices=[
            proxmoxve.VmLegacyNetworkDeviceArgs(
                bridge=settings.proxmox.bridge, model="virtio", mac_address=node.mac
            )
        ],
        opts=pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(ignore_changes=VM_IGNORED_CHANGES)
        ),
    )
