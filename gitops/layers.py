"""The Flux Kustomization hierarchy, declared once as data, and the Flux objects built from it.

Why layers: Flux's server-side dry-run rejects an object whose CRD does not exist yet, so whatever
needs a CRD (ClusterIssuer, HTTPRoute, ClusterPolicy, PodMonitor …) sits in a later layer than
what installs the CRD. The CRDs that several charts need come first, in a layer of their own, so
the charts after them install in parallel. Pure: unit-tested without Pulumi.
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
# A substitution variable holding one double quote. kustomize re-serialises every object before
# Flux substitutes (quotes written in the source do not survive `kustomize build`), so a value is
# kept a string by writing `${quote}${VAR}${quote}`: Flux's documented way ("Post build
# substitution of numbers and booleans", fluxcd/kustomize-controller
# docs/spec/v1/kustomizations.md).
QUOTE_VARIABLE = "quote"

# How long a dependent waits before it re-checks a dependency that was not Ready: Flux's default
# is 30 s per edge (`--requeue-dependency`, helm-controller and kustomize-controller main.go);
# Flux's vertical-scaling guide sets 5s. gitops/component.py patches both controllers with it.
REQUEUE_DEPENDENCY = "5s"
REQUEUE_DEPENDENCY_SECONDS = 5
# How long a failed layer waits before Flux tries it again (the Kustomization's retryInterval).
RETRY_INTERVAL_MINUTES = 2
REQUEUED_CONTROLLERS = ("helm-controller", "kustomize-controller")


@dataclass(frozen=True)
class Layer:
    name: str
    depends_on: tuple[str, ...]
    # Flux's health-check timeout for the layer: longer than the longest chain of HelmRelease
    # timeouts (plus requeues) inside it, so a slow first install never fails the layer.
    timeout_minutes: int
    # What the layer holds and why it is ordered so (README and kubernetes/README.md say the same).
    holds: str

    @property
    def path(self) -> str:
        return f"./{MANIFEST_ROOT}/{self.name}"


LAYERS = (
    Layer(
        "crds",
        (),
        10,
        "CRDs other layers' objects and charts need: Gateway API, prometheus-operator, Traefik",
    ),
    # Charts in parallel: HelmRelease dependsOn only where a running service is needed
    # (volumes need the NFS StorageClass). Longest chain: nfs (5m) -> kube-prometheus-stack (15m).
    Layer(
        "infrastructure",
        ("crds",),
        25,
        "NFS provisioner, cert-manager, Traefik, Kyverno, kube-prometheus-stack, Loki, Alloy",
    ),
    # The wildcard certificate waits for DNS-01 (propagation checks take minutes).
    Layer(
        "infrastructure-config",
        ("infrastructure",),
        15,
        "ClusterIssuers, wildcard Certificate, routes, rules, monitors, Flux alerting",
    ),
    Layer("cluster-policies", ("infrastructure",), 5, "Kyverno ClusterPolicies"),
    # Apps need the Gateway's certificate; policies audit in the background, so apps need not
    # wait for them.
    Layer("apps", ("infrastructure-config",), 10, "workloads (whoami is the template)"),
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


def worst_case_seconds(layer: Layer, layers: tuple[Layer, ...] = LAYERS) -> int:
    """The longest a layer can take to become Ready from its creation: its own timeout after the
    slowest chain of layers before it, plus one dependency requeue per edge."""
    by_name = {candidate.name: candidate for candidate in layers}
    before = max(
        (
            worst_case_seconds(by_name[name], layers) + REQUEUE_DEPENDENCY_SECONDS
            for name in layer.depends_on
        ),
        default=0,
    )
    return before + layer.timeout_minutes * 60


def kustomization_spec(layer: Layer) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "interval": "10m",
        "retryInterval": f"{RETRY_INTERVAL_MINUTES}m",
        "timeout": f"{layer.timeout_minutes}m",
        "path": layer.path,
        "prune": True,
        "wait": True,
        "sourceRef": {"kind": "GitRepository", "name": SOURCE_NAME},
        "decryption": {"provider": "sops", "secretRef": {"name": SOPS_SECRET}},
        "postBuild": {
            "substitute": {QUOTE_VARIABLE: '"'},
            "substituteFrom": [
                {"kind": "ConfigMap", "name": SETTINGS_CONFIGMAP},
                {"kind": "Secret", "name": SECRETS_SECRET},
            ],
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


def with_requeue_dependency(kind: str, props: dict[str, Any]) -> dict[str, Any] | None:
    """The Deployment of helm- or kustomize-controller from install.yaml with
    `--requeue-dependency` added to its manager container; None for every other object."""
    if kind != "Deployment" or (props.get("metadata") or {}).get("name") not in (
        REQUEUED_CONTROLLERS
    ):
        return None
    pod = props["spec"]["template"]["spec"]
    flag = f"--requeue-dependency={REQUEUE_DEPENDENCY}"
    containers = [
        {
            **container,
            "args": [
                *(a for a in container.get("args", []) if not a.startswith("--requeue-dependency")),
                flag,
            ],
        }
        if container.get("name") == "manager"
        else container
        for container in pod["containers"]
    ]
    template = {**props["spec"]["template"], "spec": {**pod, "containers": containers}}
    return {**props, "spec": {**props["spec"], "template": template}}
