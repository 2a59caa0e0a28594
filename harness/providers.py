"""Deterministic stand-ins for what the providers return, shaped as the providers return them."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from pulumi.runtime import mocks


def _digest(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


class HomelabMocks(mocks.Mocks):
    """Deterministic stand-ins for what the providers would return."""

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        kind = args.typ
        if kind == "proxmoxve:index/vmLegacy:VmLegacy":
            vm_id = inputs.get("vmId") or 100 + int(_digest(args.name), 16) % 900
            last_octet = int(inputs["networkDevices"][0]["macAddress"][-2:], 16)
            addresses = [["127.0.0.1"], [f"10.99.0.{last_octet}"]]
            return str(vm_id), {**inputs, "vmId": vm_id, "ipv4Addresses": addresses}
        if kind == "proxmoxve:download/file:File":
            return f"{inputs['datastoreId']}:iso/{inputs['fileName']}", inputs
        if kind == "talos:imageFactory/schematic:Schematic":
            return _digest(inputs["schematic"]), inputs
        if kind == "talos:machine/secrets:Secrets":
            if args.resource_id:
                return "machine-secrets", {**inputs, **_imported_machine_secrets(args.resource_id)}
            return "machine-secrets", {**inputs, **_fake_machine_secrets()}
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
            schematic, version = given["schematicId"], given["talosVersion"]
            image = f"https://factory.talos.dev/image/{schematic}/{version}"
            return {
                **given,
                "urls": {
                    "diskImage": f"{image}/metal-amd64.raw.zst",
                    "diskImageSecureboot": f"{image}/metal-amd64-secureboot.raw.zst",
                    "initramfs": f"{image}/initramfs-amd64.xz",
                    "installer": f"factory.talos.dev/metal-installer/{schematic}:{version}",
                    "installerSecureboot": (
                        f"factory.talos.dev/metal-installer-secureboot/{schematic}:{version}"
                    ),
                    "iso": f"{image}/metal-amd64.iso",
                    "isoSecureboot": f"{image}/metal-amd64-secureboot.iso",
                    "kernel": f"{image}/kernel-amd64",
                    "kernelCommandLine": f"{image}/cmdline-metal-amd64",
                    "pxe": f"https://pxe.factory.talos.dev/pxe/{schematic}/{version}/metal-amd64",
                    "uki": f"{image}/metal-amd64-secureboot-uki.efi",
                },
            }
        if token == "talos:machine/getConfiguration:getConfiguration":
            role, name = given["machineType"], given["clusterName"]
            return {**given, "machineConfiguration": f"version: v1alpha1\n# {role} of {name}\n"}
        if token == "talos:client/getConfiguration:getConfiguration":
            return {**given, "talosConfig": f"context: {given['clusterName']}\n"}
        return {**given, "id": token}


def _imported_machine_secrets(path: str) -> dict[str, Any]:
    """As the provider's ImportState: read a `talosctl gen secrets` file, record v1.3, issue an
    admin client certificate from the bundle's OS CA (terraform-provider-talos v0.11.0
    pkg/talos/talos_machine_secrets_resource.go and util.go secretsBundleTomachineSecrets)."""
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


def _fake_machine_secrets() -> dict[str, Any]:
    pair = {"cert": "Y2VydA==", "key": "a2V5"}
    return {
        "clientConfiguration": {
            "caCertificate": "Y2E=",
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
