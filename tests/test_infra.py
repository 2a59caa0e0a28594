"""The Proxmox side as registered: image, ISO downloads and every VM setting."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from harness.engine import Program, ProgramRun
from harness.environment import committed_config, ha_config
from harness.tokens import ISO, SCHEMATIC, VM
from tests.test_config_errors import assert_clean_failure


@pytest.fixture
def single(program: Program) -> ProgramRun:
    return program(committed_config())


@pytest.fixture
def ha(program: Program) -> ProgramRun:
    return program(ha_config())


def test_every_vm_setting_of_the_reference(single: ProgramRun) -> None:
    vm = single.one(VM, "talos-cp-1")
    iso = single.one(ISO, "talos-iso-pve")
    expected: dict[str, Any] = {
        "name": "talos-cp-1",
        "nodeName": "pve",
        "tags": ["controlplane", "homelab", "kubernetes", "talos"],
        "bios": "ovmf",
        "machine": "q35",
        "operatingSystem": {"type": "l26"},
        "bootOrders": ["scsi0", "ide2"],
        "scsiHardware": "virtio-scsi-pci",
        "stopOnDestroy": True,
        "onBoot": True,
        "rebootAfterUpdate": False,
        "agent": {"enabled": True, "trim": True, "waitForIp": {"disabled": True}},
        "cpu": {"type": "host", "cores": 4},
        "memory": {"dedicated": 16384},
        "efiDisk": {
            "datastoreId": "local-lvm",
            "fileFormat": "raw",
            "type": "4m",
            "preEnrolledKeys": False,
        },
        "tpmState": {"datastoreId": "local-lvm", "version": "v2.0"},
        "disks": [
            {
                "interface": "scsi0",
                "datastoreId": "local-lvm",
                "size": 100,
                "fileFormat": "raw",
                "discard": "on",
                "ssd": True,
            }
        ],
        "cdrom": {"fileId": _iso_id(iso), "interface": "ide2"},
        "initialization": {
            "interface": "ide0",
            "datastoreId": "local-lvm",
            "ipConfigs": [{"ipv4": {"address": "192.168.20.100/24", "gateway": "192.168.20.1"}}],
            "dns": {"servers": ["1.1.1.1", "9.9.9.9"]},
        },
        "networkDevices": [
            {"bridge": "vmbr0", "model": "virtio", "macAddress": "BC:24:11:CA:FE:01"}
        ],
    }
    for key, value in expected.items():
        assert vm.inputs[key] == value, key
    assert "Managed by Pulumi" in vm.inputs["description"]


def _iso_id(iso: Any) -> str:
    return f"{iso.inputs['datastoreId']}:iso/{iso.inputs['fileName']}"


def test_a_new_iso_never_touches_a_running_vm(single: ProgramRun) -> None:
    assert single.one(VM, "talos-cp-1").ignore_changes == ["cdrom"]


def test_vm_ids_are_pinned_when_configured(program: Program) -> None:
    config = committed_config()
    config["nodes"][0]["vmId"] = 4242
    run = program(config)
    assert run.one(VM, "talos-cp-1").inputs["vmId"] == 4242
    assert run.outputs["vmIds"] == {"talos-cp-1": 4242}


def test_one_iso_download_per_proxmox_node_by_default(single: ProgramRun, ha: ProgramRun) -> None:
    assert [r.name for r in single.of_type(ISO)] == ["talos-iso-pve"]
    assert sorted(r.name for r in ha.of_type(ISO)) == ["talos-iso-pve", "talos-iso-pve2"]
    for vm in ha.of_type(VM):
        iso = ha.one(ISO, f"talos-iso-{vm.inputs['nodeName']}")
        assert vm.inputs["cdrom"]["fileId"] == _iso_id(iso)


def test_iso_is_the_secure_boot_image_named_by_version_and_schematic(single: ProgramRun) -> None:
    iso = single.one(ISO, "talos-iso-pve")
    schematic = single.one(SCHEMATIC, "talos-schematic").state
    schematic_id = single.outputs["schematicId"]
    assert iso.inputs["url"].endswith(f"/{schematic_id}/v1.12.4/nocloud-amd64-secureboot.iso")
    assert (
        iso.inputs["fileName"] == f"talos-v1.12.4-{schematic_id[:12]}-nocloud-secureboot-amd64.iso"
    )
    assert iso.inputs["contentType"] == "iso"
    assert iso.inputs["datastoreId"] == "local"
    # An upgrade downloads a new file; the old one stays for the VMs still pointing at it.
    assert iso.retain_on_delete is True
    assert schematic


def test_schematic_is_built_from_the_extension_list(single: ProgramRun) -> None:
    document = yaml.safe_load(single.one(SCHEMATIC, "talos-schematic").inputs["schematic"])
    assert document == {
        "customization": {
            "systemExtensions": {
                "officialExtensions": ["siderolabs/nfs-utils", "siderolabs/qemu-guest-agent"]
            }
        }
    }


def test_an_explicit_schematic_id_replaces_the_schematic(program: Program) -> None:
    config = committed_config()
    config["image"]["schematicId"] = "a" * 64
    run = program(config)
    assert run.of_type(SCHEMATIC) == []
    assert (
        run.outputs["installerImage"]
        == f"factory.talos.dev/nocloud-installer-secureboot/{'a' * 64}:v1.12.4"
    )


def test_without_secure_boot_the_plain_image_is_used(program: Program) -> None:
    config = committed_config()
    config["features"].update(secureBoot=False, diskEncryption=False)
    run = program(config)
    iso = run.one(ISO, "talos-iso-pve")
    assert iso.inputs["url"].endswith("/nocloud-amd64.iso")
    assert iso.inputs["fileName"].endswith("-nocloud-amd64.iso")
    assert run.outputs["installerImage"].startswith("factory.talos.dev/nocloud-installer/")


def test_vms_use_the_proxmox_provider_and_sit_under_the_infra_component(ha: ProgramRun) -> None:
    component = ha.one("homelab:infra:ProxmoxInfra", "proxmox")
    provider = ha.one("pulumi:providers:proxmoxve", "proxmox")
    assert provider.inputs["endpoint"] == "https://192.168.20.10:8006/"
    assert provider.inputs["insecure"] in (True, "true")
    for registration in ha.of_type(VM) + ha.of_type(ISO):
        assert registration.parent == component.urn
        assert registration.provider.startswith(provider.urn)
    assert sorted(r.name for r in ha.of_type(VM)) == [
        "talos-cp-1",
        "talos-cp-2",
        "talos-cp-3",
        "talos-worker-1",
        "talos-worker-2",
    ]


def test_schematic_and_isos_do_not_wait_for_vms(ha: ProgramRun) -> None:
    vms = ha.of_type(VM)
    for independent in ha.of_type(ISO) + ha.of_type(SCHEMATIC):
        assert not any(ha.waits_for(independent, vm) for vm in vms)
    isos = ha.of_type(ISO)
    assert not ha.waits_for(isos[0], isos[1]) and not ha.waits_for(isos[1], isos[0])


def test_scsi_controller_follows_talos_guide_and_iothread_only_with_single(
    single: ProgramRun, program: Program
) -> None:
    # Talos's Proxmox guide for 1.12: "VirtIO SCSI"; "VirtIO SCSI single" can hang the install.
    default = single.one(VM, "talos-cp-1").inputs
    assert default["scsiHardware"] == "virtio-scsi-pci"
    assert "iothread" not in default["disks"][0]
    config = committed_config()
    config["proxmox"]["scsiController"] = "virtio-scsi-single"
    chosen = program(config).one(VM, "talos-cp-1").inputs
    assert chosen["scsiHardware"] == "virtio-scsi-single"
    assert chosen["disks"][0]["iothread"] is True


def test_an_unknown_scsi_controller_is_rejected_naming_the_allowed_ones(program: Program) -> None:
    config = committed_config()
    config["proxmox"]["scsiController"] = "virtio-scsi"
    assert_clean_failure(
        program(config, expect_error=True),
        [
            "homelab:proxmox.scsiController = 'virtio-scsi'",
            "virtio-scsi-pci, virtio-scsi-single, lsi, lsi53c810, megasas, pvscsi",
        ],
    )


def test_no_vm_reboots_itself_on_update(ha: ProgramRun) -> None:
    # bpg's default (true) would restart every VM at once for a cores/memory change.
    assert [vm.inputs["rebootAfterUpdate"] for vm in ha.of_type(VM)] == [False] * 5


def test_a_shared_iso_datastore_gets_one_download_for_every_vm(program: Program) -> None:
    config = ha_config()
    config["proxmox"]["isoDatastoreShared"] = True
    run = program(config)
    (iso,) = run.of_type(ISO)
    assert (iso.name, iso.inputs["nodeName"]) == ("talos-iso-pve", "pve")
    vms = run.of_type(VM)
    assert {vm.inputs["nodeName"] for vm in vms} == {"pve", "pve2"}
    for vm in vms:
        assert vm.inputs["cdrom"]["fileId"] == _iso_id(iso)
        assert run.waits_for(vm, iso)
