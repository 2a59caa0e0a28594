"""The VM definition for one Talos node: every Proxmox setting in one place."""

from __future__ import annotations

import pulumi
import pulumi_proxmoxve as proxmoxve

from settings import Node, Settings

# A new ISO (Talos upgrade, new schematic) must never touch a running VM: it boots from its disk.
VM_IGNORED_CHANGES = ["cdrom"]
# The ISO sits on ide2, bpg's default for the cloud-init drive; ide0 is free and in the range bpg
# accepts (ide0..3, sata0..5, scsi0..30: CloudInitInterfaceValidator in
# proxmoxtf/resource/vm/validators.go).
CLOUD_INIT_INTERFACE = "ide0"
# A SCSI disk's iothread only takes effect on this controller; on the others qemu-server ignores it
# ("iothread is only valid with virtio disk or virtio-scsi-single controller", PVE/QemuServer.pm).
IOTHREAD_CONTROLLER = "virtio-scsi-single"


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
    controller = settings.proxmox.scsi_controller
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
        scsi_hardware=controller,
        stop_on_destroy=True,
        on_boot=True,
        # A cores/memory change would otherwise reboot every VM at once, and three control planes
        # would lose quorum together. Off, bpg leaves such a change pending (with a warning) until
        # Proxmox restarts the VM, and fails one that needs the VM stopped, e.g. adding the
        # cloud-init drive to a running VM (proxmoxtf/resource/vm/vm.go, reboot_after_update and
        # rebootAfterUpdateDisabledError). cluster/rollout.py restarts the VMs one at a time.
        reboot_after_update=False,
        agent=proxmoxve.VmLegacyAgentArgs(
            enabled=True,
            trim=True,
            # Nothing reads the addresses the agent reports (every node is reached at its static
            # IP), so bpg must not wait for them at the end of each apply and refresh. The agent
            # stays on for Proxmox's clean shutdown and status.
            wait_for_ip=proxmoxve.VmLegacyAgentWaitForIpArgs(disabled=True),
        ),
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
                iothread=True if controller == IOTHREAD_CONTROLLER else None,
                discard="on",
                ssd=True,
            )
        ],
        cdrom=proxmoxve.VmLegacyCdromArgs(file_id=iso_file_id, interface="ide2"),
        initialization=cloud_init(settings, node),
        network_devices=[
            proxmoxve.VmLegacyNetworkDeviceArgs(
                bridge=settings.proxmox.bridge, model="virtio", mac_address=node.mac
            )
        ],
        opts=pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(ignore_changes=VM_IGNORED_CHANGES)
        ),
    )


def cloud_init(settings: Settings, node: Node) -> proxmoxve.VmLegacyInitializationArgs:
    """The cloud-init drive Talos's nocloud platform reads: the node's static address from boot.

    Proxmox writes it as nocloud network-config v1 keyed by the NIC's MAC (citype defaults to
    nocloud for a Linux ostype: PVE::QemuServer::Cloudinit get_cloudinit_format, nocloud_network).
    `type` and `upgrade` stay unset: bpg forces a new VM when `type` changes, and only root@pam may
    set `upgrade` (bpg docs/resources/virtual_environment_vm.md, initialization).
    """
    prefix = settings.network.cidr.prefixlen
    return proxmoxve.VmLegacyInitializationArgs(
        interface=CLOUD_INIT_INTERFACE,
        datastore_id=settings.proxmox.vm_datastore,
        ip_configs=[
            proxmoxve.VmLegacyInitializationIpConfigArgs(
                ipv4=proxmoxve.VmLegacyInitializationIpConfigIpv4Args(
                    address=f"{node.ip}/{prefix}", gateway=str(settings.network.gateway)
                )
            )
        ],
        dns=proxmoxve.VmLegacyInitializationDnsArgs(
            servers=[str(server) for server in settings.network.nameservers]
        ),
    )
