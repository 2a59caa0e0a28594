"""The Flux Kustomization hierarchy, declared once as data, and the Flux objects built from it.

Why layers: Flux's server-side dry-run rejects an object whose CRD does not exist yet, so whatever
needs a CRD (ClusterIssuer, HTTPRoute, ClusterPolicy, PodMonitor …) sits in a later layer than the
HelmRelease that installs the CRD. Pure: unit-tested without Pulumi.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FLUX_NAMESPACE = "flux-system"
SOURCE_NAME = "flux-system"
SOPS_SECRET = "sops-age"
SETTINGS_CONFIGMAP = "cluster-settings"
SECRETS_SECRET = "cluster-secrets"
MANIFEST_ROOT = "kubernetes"


@dataclass(frozen=True)
class Layer:
    name: str
    depends_on: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return f"./{MANIFEST_ROOT}/{self.name}"


LAYERS = (
    # HelmReleases that install CRDs (cert-manager, Traefik, Kyverno, kube-prometheus-stack,
    # Gateway API), plus everything that needs no CRD.
    Layer("infrastructure"),
    # Objects of those CRDs: issuers, certificates, routes, monitors, Flux alerts.
    Layer("infrastructure-config", ("infrastructure",)),
    Layer("cluster-policies", ("infrastructure",)),
    Layer("apps", ("infrastructure-config", "cluster-policies")),
)


def check_layers(layers: tuple[Layer, ...]) -> None:
    """Every dependency names a known layer and the graph has no cycle."""
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate layer names in {names}")
    by_name = {layer.name: layer for layer in layers}
    for layer in layers:
        unknown = set(layer.depends_on) - set(by_name)
        if unknown:
            raise ValueError(f"layer {layer.name} depends on unknown {sorted(unknown)}")
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in visiting:
            raise ValueError(f"layer cycle: {' -> '.join((*trail, name))}")
        visiting.add(name)
        for dependency in by_name[name].depends_on:
            visit(dependency, (*trail, name))
        visiting.discard(name)
        done.add(name)

    for layer in layers:
        visit(layer.name, ())


def kustomization_spec(layer: Layer) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "interval": "10m",
        "retryInterval": "2m",
        "timeout": "5m",
        "path": layer.path,
        "prune": True,
        "wait": True,
        "sourceRef": {"kind": "GitRepository", "name": SOURCE_NAME},
        "decryption": {"provider": "sops", "secretRef": {"name": SOPS_SECRET}},
        "postBuild": {
            "substituteFrom": [
                {"kind": "ConfigMap", "name": SETTINGS_CONFIGMAP},
                {"kind": "Secret", "name": SECRETS_SECRET},
            ]
        },
    }
    if layer.depends_on:
        spec["dependsOn"] = [{"name": name} for name in layer.depends_on]
    return spec


def git_repository_spec(url: str, branch: str) -> dict[str, Any]:
    return {
        "interval": "1m",
        "url": url,
        "ref": {"branch": branch},
        "secretRef": {"name": SOURCE_NAME},
        # Flux needs only the manifests: keep the Python program out of its artifact.
        "ignore": f"/*\n!/{MANIFEST_ROOT}\n",
    }


def flux_install_manifest(version: str) -> str:
    """The Flux release's own install manifest: CRDs, controllers, RBAC, the namespace."""
    return f"https://github.com/fluxcd/flux2/releases/download/{version}/install.yaml"
