"""Flux's controllers as installed: the dependency requeue patched into their Deployments."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from pulumi.runtime import mocks

from harness.engine import Program
from harness.environment import committed_config
from harness.tokens import FLUX


def _deployment(name: str) -> dict[str, Any]:
    """A Deployment as flux2's install.yaml carries it (fluxcd/helm-controller
    config/manager/deployment.yaml: container `manager`, flags in args)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "flux-system"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "manager",
                            "args": ["--watch-all-namespaces", "--log-level=info"],
                        }
                    ]
                }
            }
        },
    }


@pytest.fixture
def flux_transforms(
    program: Program, monkeypatch: pytest.MonkeyPatch
) -> list[pulumi.ResourceTransform]:
    """The transforms the program hands the engine with the Flux ConfigFile, as registered."""
    seen: list[pulumi.ResourceTransform] = []
    original = mocks.MockMonitor.RegisterResource

    def record(self: mocks.MockMonitor, request: Any) -> Any:
        if request.type == FLUX:
            seen.extend(mocks._resolve_callbacks(request.transforms))
        return original(self, request)

    monkeypatch.setattr(mocks.MockMonitor, "RegisterResource", record)
    program(committed_config())
    return seen


def _apply(transforms: list[pulumi.ResourceTransform], kind: str, props: dict[str, Any]) -> Any:
    args = pulumi.ResourceTransformArgs(
        custom=True,
        type_=f"kubernetes:apps/v1:{kind}",
        name=f"flux-system/{props['metadata']['name']}",
        props=props,
        opts=pulumi.ResourceOptions(),
    )
    results = [transform(args) for transform in transforms]
    return [result for result in results if result is not None]


@pytest.mark.parametrize("controller", ["helm-controller", "kustomize-controller"])
def test_dependency_requeue_is_cut_to_5s(
    flux_transforms: list[pulumi.ResourceTransform], controller: str
) -> None:
    """Flux re-checks a not-ready dependency every 30 s by default, per edge; the controllers
    that follow dependsOn get --requeue-dependency=5s (Flux's vertical-scaling guide)."""
    (result,) = _apply(flux_transforms, "Deployment", _deployment(controller))
    (manager,) = result.props["spec"]["template"]["spec"]["containers"]
    assert manager["args"] == [
        "--watch-all-namespaces",
        "--log-level=info",
        "--requeue-dependency=5s",
    ]


def test_other_flux_objects_are_left_alone(flux_transforms: list[pulumi.ResourceTransform]) -> None:
    assert _apply(flux_transforms, "Deployment", _deployment("source-controller")) == []
    assert _apply(flux_transforms, "Service", _deployment("helm-controller")) == []
