"""Deterministic stand-ins for what the providers return, shaped as the providers return them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pulumi.runtime import mocks

from harness.tokens import CLIENT_CONFIGURATION, MACHINE_CONFIGURATION, STACK_REFERENCE


def _digest(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


class HomelabMocks(mocks.Mocks):
    """Deterministic stand-ins for what the providers would return."""

    def __init__(self, stack_outputs: Mapping[str, Any] | None = None) -> None:
        # What the stack's last successful run exported (none for a new stack): the answer to
        # the program's StackReference to itself.
        self.stack_outputs = dict(stack_outputs or {})

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        kind = args.typ
        if kind == "proxmoxve:index/vmLegacy:VmLegacy":
            vm_id = inputs.get("vmId") or 100 + int(_digest(args.name), 16) % 900
            return str(vm_id), {**inputs, "vmId": vm_id, "ipv4Addresses": vm_ipv4_addresses(inputs)}
        if kind == STACK_REFERENCE:
            # The engine's builtin provider answers with the stack's outputs (pulumi/pulumi,
            # pkg/resource/deploy/builtins.go readStackReference).
            name = inputs.get("name", args.resource_id)
            return str(name), {
                "name": name,
                "outputs": self.stack_outputs,
                "secretOutputNames": [],
            }
        if kind == "proxmoxve:download/file:File":
            return f"{inputs['datastoreId']}:iso/{inputs['fileName']}", inputs
        if kind == "talos:imageFactory/schematic:Schematic":
            return _digest(inputs["schematic"]), inputs
        if kind == "talos:machine/secrets:Secrets":
            if args.resource_id:
                return "machine-secrets", {**inputs, **_imported_machine_secrets(args.resource_id)}
            return "machine-secrets", {**inputs, **fake_machine_secrets()}
        if kind == "talos:cluster/kubeconfig:Kubeconfig":
            return "kubeconfig", {**inputs, "kubeconfigRaw": "apiVersion: v1\nkind: Config\n"}
        if kind == "tls:index/privateKey:PrivateKey":
            key = _digest(args.name)
            return args.name, {
                **inputs,
                "privateKeyOpenssh": f"-----BEGIN OPENSSH PRIVATE KEY-----\n{key}\n",
                "publicKeyOpenssh": f"ssh-ed25519 {key[:40]}\n",
            }
        return f"{args.name}-id", inputs

    def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        return self._invoke_result(args.token, dict(args.args)), []

    def _invoke_result(self, token: str, given: dict[str, Any]) -> dict[str, Any]:
        if token == "talos:imageFactory/getUrls:getUrls":
            return {**given, "urls": _image_factory_urls(given)}
        if token == "talos:imageFactory/getExtensionsVersions:getExtensionsVersions":
            return {
                **given,
                "id": "extensions_info",
                "extensionsInfos": _extensions_catalogue(given),
            }
        if token == MACHINE_CONFIGURATION:
            role, name = given["machineType"], given["clusterName"]
            return {**given, "machineConfiguration": f"version: v1alpha1\n# {role} of {name}\n"}
        if token == CLIENT_CONFIGURATION:
            return {**given, "talosConfig": f"context: {given['clusterName']}\n"}
        return {**given, "id": token}


# What the QEMU guest agent reports for an installed Talos node, in its order: `lo` first, with
# Talos's host-DNS address 169.254.116.108 as well as 127.0.0.1, then the NIC (as observed in this
# project's issues 8 and 9). A program that read these would pick a wrong address.
HOST_DNS_ADDRESS = "169.254.116.108"


def vm_ipv4_addresses(inputs: dict[str, Any]) -> list[list[str]]:
    """The VM's ipv4Addresses as bpg returns them.

    With agent.waitForIp.disabled bpg never asks the agent and leaves the list empty
    (proxmox/nodes/vms/vms.go WaitForNetworkInterfacesFromVMAgent: Skip). Otherwise the agent's
    view after install: loopback, then the NIC on the address its cloud-init drive gave it, or a
    DHCP-style lease when it has none.
    """
    if inputs.get("agent", {}).get("waitForIp", {}).get("disabled"):
        return []
    ip_configs = inputs.get("initialization", {}).get("ipConfigs") or [{}]
    static = ip_configs[0].get("ipv4", {}).get("address", "")
    last_octet = int(inputs["networkDevices"][0]["macAddress"][-2:], 16)
    nic = static.split("/")[0] if static else f"10.99.0.{last_octet}"
    return [["127.0.0.1", HOST_DNS_ADDRESS], [nic]]


def _image_factory_urls(given: dict[str, Any]) -> dict[str, str]:
    """URLs as terraform-provider-talos builds them (pkg/talos/talos_image_factory_urls_data_source
    .go): <platform>-installer[-secureboot] and <platform>-<arch>[-secureboot].iso; kernel,
    initramfs, command line and UKI only for metal."""
    schematic, version = given["schematicId"], given["talosVersion"]
    platform = given.get("platform", "metal")
    image = f"https://factory.talos.dev/image/{schematic}/{version}"
    urls = {
        "diskImage": f"{image}/{platform}-amd64.raw.zst",
        "diskImageSecureboot": f"{image}/{platform}-amd64-secureboot.raw.zst",
        "installer": f"factory.talos.dev/{platform}-installer/{schematic}:{version}",
        "installerSecureboot": (
            f"factory.talos.dev/{platform}-installer-secureboot/{schematic}:{version}"
        ),
        "iso": f"{image}/{platform}-amd64.iso",
        "isoSecureboot": f"{image}/{platform}-amd64-secureboot.iso",
        "pxe": f"https://pxe.factory.talos.dev/pxe/{schematic}/{version}/{platform}-amd64",
    }
    if platform == "metal":
        urls |= {
            "initramfs": f"{image}/initramfs-amd64.xz",
            "kernel": f"{image}/kernel-amd64",
            "kernelCommandLine": f"{image}/cmdline-metal-amd64",
            "uki": f"{image}/metal-amd64-secureboot-uki.efi",
        }
    return urls


# A subset of Image Factory's official catalogue: directory names of siderolabs/extensions at tag
# v1.12.4 (guest-agents/, storage/, network/), which the factory lists as siderolabs/<name> (its
# name is the extension image's repository, image-factory internal/frontend/http/meta.go), with
# each manifest.yaml.tmpl's author. Image tags and digests are stand-ins.
_CATALOGUE = (
    ("qemu-guest-agent", "Markus Reiter"),
    ("xen-guest-agent", "Jerwin NJ"),
    ("vmtoolsd-guest-agent", "Equinix and Siderolabs"),
    ("btrfs", "Enno Boland"),
    ("drbd", "Alexander Prentki"),
    ("iscsi-tools", "Sidero Labs"),
    ("mdadm", "Serge Logvinov"),
    ("nfs-utils", "PostFinance"),
    ("nfsd", "Cameron Mehl"),
    ("nfsrahead", "Steve Kreitzer"),
    ("zfs", "Aenix, Enix"),
    ("tailscale", "Beau Trepp"),
)


def _extensions_catalogue(given: dict[str, Any]) -> list[dict[str, str]]:
    """The data source's answer, filters applied as terraform-provider-talos v0.11.0 does
    (talos_image_factory_extensions_versions_data_source.go: exact names, or substrings)."""
    exact = (given.get("exactFilters") or {}).get("names") or []
    parts = (given.get("filters") or {}).get("names") or []
    infos = [
        {
            "name": f"siderolabs/{name}",
            "ref": f"ghcr.io/siderolabs/{name}:{given['talosVersion']}",
            "digest": f"sha256:{_digest(name, given['talosVersion'])}",
            "author": author,
            "description": f"[extra] {name} system extension",
        }
        for name, author in _CATALOGUE
    ]
    if not exact and not parts:
        return infos
    return [
        info
        for info in infos
        if info["name"] in exact or any(part in info["name"] for part in parts)
    ]


def _imported_machine_secrets(path: str) -> dict[str, Any]:
    """As the provider's ImportState: stat the path, read it whole once (os.ReadFile), record
    v1.3, issue an admin client certificate from the bundle's OS CA (terraform-provider-talos
    v0.11.0 pkg/talos/talos_machine_secrets_resource.go ImportState, util.go
    secretsBundleTomachineSecrets)."""
    Path(path).stat()
    bundle = yaml.safe_load(Path(path).read_text())
    certs = bundle["certs"]

    def pair(name: str) -> dict[str, str]:
        return {"cert": certs[name]["crt"], "key": certs[name]["key"]}

    return {
        "talosVersion": "v1.3",
        "clientConfiguration": {
            "caCertificate": certs["os"]["crt"],
            "clientCertificate": "aW1wb3J0ZWQtY2xpZW50",
            "clientKey": "aW1wb3J0ZWQta2V5",  # pragma: allowlist secret
        },
        "machineSecrets": {
            "certs": {
                "etcd": pair("etcd"),
                "k8s": pair("k8s"),
                "k8sAggregator": pair("k8saggregator"),
                "k8sServiceaccount": {"key": certs["k8sserviceaccount"]["key"]},
                "os": pair("os"),
            },
            "cluster": dict(bundle["cluster"]),
            "secrets": {
                "bootstrapToken": bundle["secrets"]["bootstraptoken"],
                "secretboxEncryptionSecret": bundle["secrets"]["secretboxencryptionsecret"],
            },
            "trustdinfo": dict(bundle["trustdinfo"]),
        },
    }


def fake_machine_secrets() -> dict[str, Any]:
    """The Secrets resource's outputs as the provider returns them (camelCase wire names)."""
    pair = {"cert": "Y2VydA==", "key": "a2V5"}
    return {
        "clientConfiguration": {
            # The bundle's OS CA, as the provider issues the admin certificate from it
            # (terraform-provider-talos v0.11.0 pkg/talos/util.go generateClientConfiguration).
            "caCertificate": "Y2VydA==",
            "clientCertificate": "Y2xpZW50",
            "clientKey": "a2V5",
        },
        "machineSecrets": {
            "certs": {
                "etcd": pair,
                "k8s": pair,
                "k8sAggregator": pair,
                "k8sServiceaccount": {"key": "a2V5"},
                "os": pair,
            },
            "cluster": {"id": "cluster-id", "secret": "cluster-secret"},
            "secrets": {"bootstrapToken": "abc.def", "secretboxEncryptionSecret": "c2Vj"},
            "trustdinfo": {"token": "trustd.token"},
        },
    }
