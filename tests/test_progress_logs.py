"""What `pulumi up` tells the user during its long waits, read from the engine's Log RPC."""

from __future__ import annotations

import pytest

from gitops.layers import LAYERS
from harness.engine import LogEntry, Program, ProgramRun
from harness.environment import committed_config, ha_config
from harness.tokens import COMMAND, DEPLOY_KEY, GIT_REPOSITORY, KUSTOMIZATION


@pytest.fixture(params=["single-node", "3cp-2w"])
def run(request: pytest.FixtureRequest, program: Program) -> ProgramRun:
    return program(committed_config() if request.param == "single-node" else ha_config())


def _info(run: ProgramRun, urn: str) -> list[LogEntry]:
    return [entry for entry in run.logs if entry.severity == "INFO" and entry.urn == urn]


def test_the_health_wait_says_what_it_waits_for_and_how_to_watch_it(run: ProgramRun) -> None:
    health = run.one(COMMAND, "cluster-health")
    (entry,) = _info(run, health.urn)
    first = run.outputs["nodeIps"]["talos-cp-1"]
    assert "waits up to 30m for the Talos cluster to be healthy" in entry.message
    # talosctl health takes one node; the exported talosconfig lists them all.
    assert (
        f"talosctl --talosconfig ./talosconfig --nodes {first} health" in entry.message.splitlines()
    )


def test_each_flux_wait_says_what_it_waits_for_and_how_to_watch_it(run: ProgramRun) -> None:
    (source,) = run.of_type(GIT_REPOSITORY)
    (entry,) = _info(run, source.urn)
    assert "Waiting up to 15 min for Flux to reach ssh://" in entry.message
    assert "flux --kubeconfig ./kubeconfig get sources git --watch" in entry.message.splitlines()
    layers = run.of_type(KUSTOMIZATION)
    assert len(layers) == len(LAYERS)
    for layer in layers:
        (entry,) = _info(run, layer.urn)
        name = layer.name.removeprefix("kustomization-")
        # The wait announced is the one Pulumi applies to that layer.
        minutes = int(layer.inputs["metadata"]["annotations"]["pulumi.com/timeoutSeconds"]) // 60
        assert f"Waiting up to {minutes} min for Flux layer {name} to be Ready" in entry.message
        assert "flux --kubeconfig ./kubeconfig get kustomizations --watch" in (
            entry.message.splitlines()
        )


def test_the_deploy_key_is_printed_once_on_a_line_of_its_own(run: ProgramRun) -> None:
    public_key = run.outputs["deployKeyPublic"].strip()
    printed = [entry for entry in run.logs if public_key in entry.message]
    assert len(printed) == 1
    (entry,) = printed
    assert entry.urn == run.one(DEPLOY_KEY, "flux-deploy-key").urn
    assert entry.message.splitlines()[-1] == public_key


def test_a_preview_waits_for_nothing_and_prints_no_deploy_key(program: Program) -> None:
    """`pulumi up` previews, then updates: the key the preview knows from state is not repeated."""
    run = program(committed_config(), preview=True)
    public_key = run.outputs["deployKeyPublic"].strip()
    info = [entry.message for entry in run.logs if entry.severity == "INFO"]
    assert not [message for message in info if public_key in message or "Waiting" in message]
