"""Provider contract: every name the program sends is one the installed provider SDK declares.

For each registered resource and each invoke of both node layouts, every property name at every
depth of what went over the wire is checked against the SDK's own type metadata
(harness/sdk_schema.py). Invoke arguments carry no type information, so a dict or an SDK output
object reaches the provider with snake_case keys, which the bridged Talos provider treats as
missing (pulumiverse/pulumi-talos#103).
"""

from __future__ import annotations

import inspect

import pulumi
import pulumi_kubernetes as k8s
import pulumiverse_talos as talos
import pytest
from pulumi.runtime import rpc
from pulumi.runtime.sync_await import _sync_await

from harness import sdk_schema
from harness.engine import Program, ProgramRun, Registration, unwrap_secrets
from harness.environment import committed_config, ha_config
from harness.tokens import (
    APPLY,
    BOOTSTRAP,
    CLIENT_CONFIGURATION,
    COMMAND,
    CONFIGMAP,
    GIT_REPOSITORY,
    KUBECONFIG,
    KUSTOMIZATION,
    MACHINE_CONFIGURATION,
    SECRET,
    STACK_REFERENCE,
)

# Flux kinds are built with the generic kubernetes CustomResource, which no SDK module registers
# under the kind's own token: their inputs are CustomResourceArgs.
CUSTOM_RESOURCES = {GIT_REPOSITORY, KUSTOMIZATION}
# The only places whose keys are user data rather than property names.
USER_DATA = {
    (SECRET, "user-map", "stringData"),  # Secret contents
    (CONFIGMAP, "user-map", "data"),  # the cluster-settings substitutions
    (GIT_REPOSITORY, "opaque", "spec"),  # Flux specs: CustomResourceArgs.spec is `Any`
    (KUSTOMIZATION, "opaque", "spec"),
    (GIT_REPOSITORY, "user-map", "metadata.annotations"),  # pulumi.com/waitFor, timeoutSeconds
    (KUSTOMIZATION, "user-map", "metadata.annotations"),
    (COMMAND, "user-map", "environment"),  # a day-two step's environment variables
}


@pytest.fixture(params=["single-node", "3cp-2w"])
def run(request: pytest.FixtureRequest, program: Program) -> ProgramRun:
    return program(committed_config() if request.param == "single-node" else ha_config())


def _stack_reference_declaration() -> sdk_schema.Declaration:
    """The engine's builtin StackReference: the attributes the core SDK's class declares, by the
    wire names its own translate_output_property maps back to them."""
    python_names = inspect.get_annotations(pulumi.StackReference)
    reference = pulumi.StackReference.__new__(pulumi.StackReference)
    wire = {
        reference.translate_output_property(w): w for w in ("name", "outputs", "secretOutputNames")
    }
    return sdk_schema.Declaration(
        "pulumi.StackReference", {wire[name]: kind for name, kind in python_names.items()}
    )


def _declaration(registration: Registration) -> sdk_schema.Declaration:
    if registration.type in CUSTOM_RESOURCES:
        return sdk_schema.input_type_declaration(k8s.apiextensions.CustomResourceArgs)
    if registration.type == STACK_REFERENCE:
        return _stack_reference_declaration()
    return sdk_schema.resource_declaration(registration.type)


def _provider_resources(run: ProgramRun) -> list[Registration]:
    """Everything a provider receives: custom resources and remote components (ConfigFile)."""
    return [r for r in run.registrations if r.custom or r.remote]


def test_every_resource_input_name_is_declared_by_its_sdk(run: ProgramRun) -> None:
    findings = [
        (r.type, r.name, finding.kind, finding.path, finding.declared_by)
        for r in _provider_resources(run)
        for finding in sdk_schema.check(unwrap_secrets(r.raw_inputs), _declaration(r))
        if (r.type, finding.kind, finding.path) not in USER_DATA
    ]
    assert findings == []


def test_every_invoke_argument_name_is_declared_by_its_sdk(run: ProgramRun) -> None:
    findings = [
        (i.token, finding.kind, finding.path, finding.declared_by)
        for i in run.invocations
        for finding in sdk_schema.check(i.args, sdk_schema.invoke_declaration(i.token))
    ]
    assert findings == []


def test_the_check_covers_the_whole_talos_side(run: ProgramRun) -> None:
    """The walk above saw every kind that carries nested Talos objects, deep inside."""
    checked = {r.type for r in _provider_resources(run)}
    assert {APPLY, BOOTSTRAP, KUBECONFIG, SECRET, CONFIGMAP, COMMAND, *CUSTOM_RESOURCES} <= checked
    invoked = {i.token for i in run.invocations}
    assert {
        "talos:imageFactory/getExtensionsVersions:getExtensionsVersions",
        MACHINE_CONFIGURATION,
        CLIENT_CONFIGURATION,
    } <= invoked
    (configuration, *_) = run.invoked(MACHINE_CONFIGURATION)
    assert configuration.args["machineSecrets"]["secrets"]["bootstrapToken"]


def test_the_sdk_sends_invoke_dicts_as_written_and_typed_args_by_their_declared_names() -> None:
    """The SDK behaviour the fix rests on, from its serializer (pulumi/runtime/rpc.py)."""
    as_written = dict.fromkeys(("ca_certificate", "client_certificate", "client_key"), "pem")
    typed = talos.cluster.GetHealthClientConfigurationArgs(**as_written)

    def wire(value: object) -> dict[str, object]:
        struct = _sync_await(rpc.serialize_properties({"clientConfiguration": value}, {}))
        return rpc.deserialize_properties(struct)["clientConfiguration"]

    assert set(wire(as_written)) == {"ca_certificate", "client_certificate", "client_key"}
    assert set(wire(typed)) == {"caCertificate", "clientCertificate", "clientKey"}
