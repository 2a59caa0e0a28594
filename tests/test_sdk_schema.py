"""harness/sdk_schema.py: names read from the SDKs, and every name they do not declare found."""

from __future__ import annotations

import json

import pulumi_kubernetes as k8s
import pulumi_proxmoxve  # noqa: F401  (imported for its registration of proxmoxve tokens)
import pulumiverse_talos  # noqa: F401  (imported for its registration of talos tokens)
import pytest

from harness.providers import fake_machine_secrets
from harness.sdk_schema import (
    Finding,
    check,
    input_type_declaration,
    invoke_declaration,
    resource_declaration,
)
from harness.tokens import (
    APPLY,
    BOOTSTRAP,
    CONFIGMAP,
    HEALTH,
    MACHINE_CONFIGURATION,
    PROXMOX_PROVIDER,
)

# The Secrets output exactly as the provider names it (the mock answers with the wire shape).
MACHINE_SECRETS = fake_machine_secrets()["machineSecrets"]


def test_resource_inputs_come_from_the_registered_class_args() -> None:
    apply = resource_declaration(APPLY)
    assert apply.owner == "pulumiverse_talos.machine.configuration_apply.ConfigurationApplyArgs"
    assert {"clientConfiguration", "machineConfigurationInput", "timeouts"} <= set(apply.properties)
    assert "client_configuration" not in apply.properties


def test_invoke_arguments_come_from_the_function_that_sends_the_token() -> None:
    declaration = invoke_declaration(MACHINE_CONFIGURATION)
    assert declaration.owner.startswith("pulumiverse_talos.machine.get_configuration.")
    assert {"clusterName", "machineSecrets", "talosVersion"} <= set(declaration.properties)
    # A token whose Python module is spelled differently (imageFactory -> imagefactory).
    assert "schematicId" in invoke_declaration("talos:imageFactory/getUrls:getUrls").properties


def test_camel_case_at_every_depth_passes() -> None:
    assert (
        check({"machineSecrets": MACHINE_SECRETS}, invoke_declaration(MACHINE_CONFIGURATION)) == []
    )
    applied = {
        "clientConfiguration": {"caCertificate": "a", "clientCertificate": "b", "clientKey": "c"},
        "timeouts": {"create": "30m", "update": "30m"},
    }
    assert check(applied, resource_declaration(APPLY)) == []


def test_a_snake_case_key_is_found_at_its_depth() -> None:
    secrets = json.loads(json.dumps(MACHINE_SECRETS))
    secrets["secrets"] = {"bootstrap_token": "t", "secretboxEncryptionSecret": "s"}
    secrets["certs"]["k8s_aggregator"] = secrets["certs"].pop("k8sAggregator")
    findings = check({"machineSecrets": secrets}, invoke_declaration(MACHINE_CONFIGURATION))
    assert sorted(f.path for f in findings) == [
        "machineSecrets.certs.k8s_aggregator",
        "machineSecrets.secrets.bootstrap_token",
    ]
    assert all(f.kind == "undeclared" for f in findings)
    health = check({"clientConfiguration": {"client_key": "k"}}, invoke_declaration(HEALTH))
    assert health == [
        Finding(
            "undeclared",
            "clientConfiguration.client_key",
            "pulumiverse_talos.cluster._inputs.GetHealthClientConfigurationArgs",
        )
    ]


def test_an_unknown_top_level_name_and_an_object_where_a_string_is_declared() -> None:
    findings = check({"nod": "10.0.0.1", "node": {"ip": "x"}}, resource_declaration(BOOTSTRAP))
    assert [(f.kind, f.path) for f in findings] == [("undeclared", "nod"), ("undeclared", "node{}")]


def test_lists_are_walked_element_by_element() -> None:
    vm = resource_declaration("proxmoxve:index/vmLegacy:VmLegacy")
    findings = check({"networkDevices": [{"bridge": "vmbr0"}, {"mac_address": "x"}]}, vm)
    assert [f.path for f in findings] == ["networkDevices[1].mac_address"]


def test_declared_maps_and_any_are_reported_for_the_caller_to_name() -> None:
    data = check({"data": {"ANY_KEY": "v"}}, resource_declaration(CONFIGMAP))
    assert [(f.kind, f.path) for f in data] == [("user-map", "data")]
    custom = input_type_declaration(k8s.apiextensions.CustomResourceArgs)
    spec = check({"apiVersion": "v1", "kind": "X", "spec": {"any": {"thing": 1}}}, custom)
    assert [(f.kind, f.path) for f in spec] == [("opaque", "spec")]


def test_json_encoded_provider_configuration_is_decoded_and_checked() -> None:
    provider = resource_declaration(PROXMOX_PROVIDER)
    assert check({"ssh": json.dumps({"agent": True})}, provider) == []
    findings = check({"ssh": json.dumps({"agent_socket": "/s"})}, provider)
    assert [f.path for f in findings] == ["ssh.agent_socket"]


def test_an_unregistered_token_is_an_error_not_a_pass() -> None:
    with pytest.raises(LookupError, match="registers the resource type"):
        resource_declaration("kubernetes:example.com/v1:Widget")
    with pytest.raises(LookupError, match="invokes"):
        invoke_declaration("talos:machine/getNothing:getNothing")
