"""The Talos patch documents, straight from the pure functions: content and schema validity."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

import pytest
import yaml

from cluster.patches import LINK_ALIAS, node_patches, render
from harness.environment import committed_config, ha_config
from settings import Node, Settings, parse_settings
from tests.talos_schemas import TALOS_MINORS, schema_errors

INSTALLER = "factory.talos.dev/metal-installer-secureboot/abc:v1.12.4"


def settings_of(config: dict[str, Any]) -> Settings:
    return parse_settings(config, {})


def docs_by_kind(documents: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        found.setdefault(document.get("kind", "v1alpha1"), []).append(document)
    return found


def single(settings: Settings, node: Node) -> dict[str, dict[str, Any]]:
    by_kind = docs_by_kind(node_patches(settings, node, INSTALLER))
    return {kind: docs[0] for kind, docs in by_kind.items() if kind != "VolumeConfig"}


SINGLE = settings_of(committed_config())
HA = settings_of(ha_config())


@pytest.mark.parametrize("minor", TALOS_MINORS)
@pytest.mark.parametrize("settings", [SINGLE, HA], ids=["single-node", "3cp-2w"])
def test_every_patch_document_validates_against_the_talos_schema(
    minor: str, settings: Settings
) -> None:
    for node in settings.nodes:
        for text in render(node_patches(settings, node, INSTALLER)):
            document = yaml.safe_load(text)
            assert schema_errors(minor, document) == [], (node.name, document)


@pytest.mark.parametrize("minor", TALOS_MINORS)
def test_schema_rejects_the_deprecated_network_fields(minor: str) -> None:
    """The check that guards against machine.network.* creeping back in can fail."""
    legacy = {"machine": {"network": {"hostname": "talos-cp-1"}}}
    assert schema_errors(minor, legacy)


def test_static_address_route_and_resolvers() -> None:
    node = SINGLE.nodes[0]
    docs = single(SINGLE, node)
    assert docs["LinkConfig"]["name"] == LINK_ALIAS
    assert docs["LinkConfig"]["addresses"] == [{"address": "192.168.20.100/24"}]
    assert docs["LinkConfig"]["routes"] == [{"gateway": "192.168.20.1"}]
    assert docs["ResolverConfig"]["nameservers"] == [{"address": "1.1.1.1"}, {"address": "9.9.9.9"}]


def test_link_is_selected_by_the_nodes_mac() -> None:
    for node in HA.nodes:
        alias = single(HA, node)["LinkAliasConfig"]
        assert alias["name"] == LINK_ALIAS
        assert alias["selector"]["match"] == f'mac(link.permanent_addr) == "{node.mac.lower()}"'


def test_hostname_is_the_node_name_with_automatic_hostnames_off() -> None:
    for node in HA.nodes:
        hostname = single(HA, node)["HostnameConfig"]
        assert (hostname["hostname"], hostname["auto"]) == (node.name, "off")
        # Quoted on the wire: an unquoted YAML off would be read as false.
        text = render([hostname])[0]
        assert "auto: 'off'" in text


def test_install_disk_and_installer_image() -> None:
    machine = single(SINGLE, SINGLE.nodes[0])["v1alpha1"]["machine"]
    assert machine["install"] == {"disk": "/dev/sda", "image": INSTALLER}


def test_kubelet_seccomp_default_and_node_ip_pinned_to_the_subnet() -> None:
    kubelet = single(SINGLE, SINGLE.nodes[0])["v1alpha1"]["machine"]["kubelet"]
    assert kubelet["defaultRuntimeSeccompProfileEnabled"] is True
    assert kubelet["nodeIP"] == {"validSubnets": ["192.168.20.0/24"]}


def test_scheduling_on_control_planes_only_without_workers() -> None:
    alone = single(SINGLE, SINGLE.nodes[0])["v1alpha1"]["cluster"]
    assert alone["allowSchedulingOnControlPlanes"] is True
    for node in HA.nodes:
        assert "allowSchedulingOnControlPlanes" not in single(HA, node)["v1alpha1"]["cluster"]


@pytest.mark.parametrize("enabled", [True, False])
def test_discovery_follows_the_feature_flag(enabled: bool) -> None:
    config = committed_config()
    config["features"]["discovery"] = enabled
    settings = settings_of(config)
    cluster = single(settings, settings.nodes[0])["v1alpha1"]["cluster"]
    assert cluster["discovery"] == {"enabled": enabled}


def test_vip_only_on_control_planes_and_only_with_several() -> None:
    assert "Layer2VIPConfig" not in single(SINGLE, SINGLE.nodes[0])
    for node in HA.nodes:
        vip = single(HA, node).get("Layer2VIPConfig")
        if node.is_controlplane:
            assert vip == {
                "apiVersion": "v1alpha1",
                "kind": "Layer2VIPConfig",
                "name": "192.168.20.99",
                "link": LINK_ALIAS,
            }
        else:
            assert vip is None


def test_one_control_plane_ignores_a_configured_vip() -> None:
    config = committed_config()
    config["network"]["vip"] = "192.168.20.99"
    settings = settings_of(config)
    assert "Layer2VIPConfig" not in single(settings, settings.nodes[0])
    assert settings.api_endpoint == "https://192.168.20.100:6443"


def test_disk_encryption_documents_only_when_enabled() -> None:
    volumes = docs_by_kind(node_patches(SINGLE, SINGLE.nodes[0], INSTALLER))["VolumeConfig"]
    by_name = {volume["name"]: volume["encryption"] for volume in volumes}
    assert set(by_name) == {"STATE", "EPHEMERAL"}
    tpm = {"checkSecurebootStatusOnEnroll": True}
    assert by_name["STATE"] == {"provider": "luks2", "keys": [{"slot": 0, "tpm": tpm}]}
    assert by_name["EPHEMERAL"] == {
        "provider": "luks2",
        "keys": [{"slot": 0, "tpm": tpm, "lockToState": True}],
    }

    config = committed_config()
    config["features"]["diskEncryption"] = False
    settings = settings_of(config)
    assert "VolumeConfig" not in docs_by_kind(node_patches(settings, settings.nodes[0], INSTALLER))


def test_api_endpoint_prefers_the_explicit_name_then_the_vip() -> None:
    assert HA.api_endpoint == "https://192.168.20.99:6443"
    config = ha_config()
    config["cluster"]["endpoint"] = "k8s.home.arpa"
    assert settings_of(config).api_endpoint == "https://k8s.home.arpa:6443"
    assert SINGLE.bootstrap_node.ip == IPv4Address("192.168.20.100")
