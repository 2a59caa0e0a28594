"""How long Flux takes to make every layer Ready on a fresh cluster: the chart graph inside each
layer, the layer graph, and the dependency requeue on every edge.

Flux does not react when a dependency becomes Ready: the dependent re-checks after
`--requeue-dependency` (30 s by default in helm-controller and kustomize-controller, flag in each
controller's main.go; gitops/layers.py sets 5 s). On average a dependent waits half an interval
after its dependency is Ready, at worst a whole one; the model charges the whole interval per edge.

"Before" is the graph this repository had until the layer reshape (issue 11): one
`infrastructure` layer whose charts chained nfs -> kube-prometheus-stack -> cert-manager ->
traefik, Gateway API CRDs nested in it, apps after both config layers, 30 s per edge. "After" is
read from kubernetes/ and gitops/layers.py, so the estimate follows the tree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import yaml

from gitops.layers import LAYERS, MANIFEST_ROOT, REQUEUE_DEPENDENCY_SECONDS, RETRY_INTERVAL_MINUTES
from harness.engine import PROJECT_ROOT

FLUX_DEFAULT_REQUEUE_SECONDS = 30  # --requeue-dependency default, helm-/kustomize-controller
UPLINK_MBIT = 100  # the target link
BYTES_PER_SECOND = UPLINK_MBIT * 1_000_000 / 8


@dataclass(frozen=True)
class Chart:
    """One HelmRelease's first install: pull its images, then wait until it is ready."""

    image_mb: float  # compressed images the chart's pods pull (estimate, see why)
    ready_s: float  # from images present to Ready (hooks, webhooks, volumes, startup)
    why: str

    @property
    def seconds(self) -> float:
        return self.image_mb * 1_000_000 / BYTES_PER_SECOND + self.ready_s


# Estimates, not measurements: image sizes are rounded compressed sizes of the charts' default
# images as registries list them, readiness from the charts' probes and hooks. Replace a figure
# by a measured one (`flux get helmreleases -A --watch` on a real first deploy) when you have it.
CHARTS: dict[str, Chart] = {
    "gateway-api": Chart(0, 10, "git clone of ./config/crd, apply CRDs (no image)"),
    "traefik-crds": Chart(0, 10, "CRDs only (no image)"),
    "prometheus-operator-crds": Chart(0, 15, "CRDs only (no image), ~10 large CRDs"),
    "nfs-subdir-external-provisioner": Chart(20, 20, "one small Go image, no probes"),
    "cert-manager": Chart(
        80, 60, "controller, webhook, cainjector, startupapicheck Job waits for the webhook"
    ),
    "traefik": Chart(50, 20, "one image, readiness probe on :8080/ping"),
    "kyverno": Chart(200, 90, "four controllers, webhook registration, CRD migration hooks"),
    "kube-prometheus-stack": Chart(
        450,
        150,
        "Prometheus, Alertmanager, Grafana (+2 sidecars), operator, kube-state-metrics, "
        "node-exporter; PVCs bind on NFS, Grafana migrates its database",
    ),
    "loki": Chart(100, 60, "single binary, PVC on NFS, ring joins before ready"),
    "alloy": Chart(120, 20, "DaemonSet: every node pulls (in parallel), config reloader"),
}
# Layers of plain objects: applied and health-checked in seconds, except what they wait for.
PLAIN_LAYER_SECONDS: dict[str, tuple[float, str]] = {
    "infrastructure-config": (
        240,
        "wildcard Certificate: ACME order + DNS-01 propagation check + issuance (minutes)",
    ),
    "cluster-policies": (20, "ClusterPolicy ready once Kyverno has compiled it"),
    "apps": (30, "whoami: one ~7 MB image, readiness probe"),
}


RETRY_INTERVAL_S = RETRY_INTERVAL_MINUTES * 60  # every layer's retryInterval (gitops/layers.py)


@dataclass(frozen=True)
class FluxGraph:
    """Charts per layer with their in-layer dependsOn, and the layers' own dependsOn."""

    charts: Mapping[str, Mapping[str, tuple[str, ...]]]  # layer -> chart -> charts it waits for
    layers: Mapping[str, tuple[str, ...]]  # layer -> layers it waits for
    timeouts_s: Mapping[str, float]  # layer -> its Kustomization timeout
    requeue_s: float


BEFORE = FluxGraph(
    charts={
        "infrastructure": {
            "gateway-api": (),
            "nfs-subdir-external-provisioner": (),
            "kube-prometheus-stack": ("nfs-subdir-external-provisioner",),
            "cert-manager": ("kube-prometheus-stack",),
            "traefik-crds": (),
            "traefik": ("cert-manager", "traefik-crds"),
            "kyverno": (),
            "loki": ("nfs-subdir-external-provisioner",),
            "alloy": ("loki",),
        },
        "infrastructure-config": {},
        "cluster-policies": {},
        "apps": {},
    },
    layers={
        "infrastructure": (),
        "infrastructure-config": ("infrastructure",),
        "cluster-policies": ("infrastructure",),
        "apps": ("infrastructure-config", "cluster-policies"),
    },
    # Every layer had `timeout: 5m`.
    timeouts_s=dict.fromkeys(
        ("infrastructure", "infrastructure-config", "cluster-policies", "apps"), 300
    ),
    requeue_s=FLUX_DEFAULT_REQUEUE_SECONDS,
)


@cache
def after() -> FluxGraph:
    """The graph as committed: HelmReleases (and the nested Gateway API Kustomization) of each
    layer directory with their dependsOn, and the layers of gitops/layers.py."""
    charts: dict[str, dict[str, tuple[str, ...]]] = {}
    for layer in LAYERS:
        found: dict[str, tuple[str, ...]] = {}
        for path in sorted((PROJECT_ROOT / MANIFEST_ROOT / layer.name).rglob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if not isinstance(doc, dict):
                    continue
                if doc.get("kind") == "HelmRelease" or (
                    doc.get("kind") == "Kustomization" and "spec" in doc
                ):
                    spec = doc["spec"]
                    found[doc["metadata"]["name"]] = tuple(
                        dep["name"] for dep in spec.get("dependsOn", [])
                    )
        charts[layer.name] = found
    return FluxGraph(
        charts=charts,
        layers={layer.name: layer.depends_on for layer in LAYERS},
        timeouts_s={layer.name: layer.timeout_minutes * 60 for layer in LAYERS},
        requeue_s=REQUEUE_DEPENDENCY_SECONDS,
    )


def layer_seconds(graph: FluxGraph, layer: str) -> float:
    """The layer's own time once it starts: its longest chart chain, a requeue per edge. A layer
    slower than its timeout fails, waits its retryInterval and is checked again (the charts go on
    installing meanwhile), so it cannot be Ready before timeout + retryInterval."""
    work = _work_seconds(graph, layer)
    timeout = graph.timeouts_s[layer]
    return work if work <= timeout else max(work, timeout + RETRY_INTERVAL_S)


def _work_seconds(graph: FluxGraph, layer: str) -> float:
    charts = graph.charts[layer]
    if not charts:
        return PLAIN_LAYER_SECONDS[layer][0]
    return _longest(charts, lambda name: CHARTS[name].seconds, graph.requeue_s)[0]


def total_seconds(graph: FluxGraph) -> tuple[float, list[str]]:
    """From the Git source Ready to the last layer Ready: the longest chain of layers, each
    layer edge costing a requeue; with the chain, first layer first."""
    total, chain = _longest(
        graph.layers, lambda layer: layer_seconds(graph, layer), graph.requeue_s
    )
    return total, list(chain)


def _longest(
    depends_on: Mapping[str, Sequence[str]], seconds: Callable[[str], float], edge_s: float
) -> tuple[float, tuple[str, ...]]:
    """The longest chain through a dependency graph (charts in a layer, or the layers), each
    node weighing `seconds` and each dependency edge `edge_s` (Flux's requeue); with the chain,
    first node first."""

    @cache
    def ready(name: str) -> tuple[float, tuple[str, ...]]:
        before = max(
            ((ready(dep)[0] + edge_s, ready(dep)[1]) for dep in depends_on[name]),
            default=(0.0, ()),
        )
        return before[0] + seconds(name), (*before[1], name)

    return max(ready(name) for name in depends_on)


TARGET_S = 600  # issue 11: at most 10 minutes on a 100 Mbit uplink


def report() -> list[str]:
    lines = [
        f"Flux on a fresh cluster, {UPLINK_MBIT} Mbit uplink (bench/flux.py; requeue charged per"
        " edge):"
    ]
    for label, graph in (("before", BEFORE), ("after", after())):
        total, chain = total_seconds(graph)
        steps = " -> ".join(f"{name} {layer_seconds(graph, name):.0f}" for name in chain)
        lines.append(
            f"  {label:<6} requeue {graph.requeue_s:>2.0f} s/edge: {steps}"
            f" = {total:.0f} s ({total / 60:.1f} min)"
        )
    verdict = "met" if total_seconds(after())[0] <= TARGET_S else "MISSED"
    lines.append(f"  target: Flux part under {TARGET_S / 60:.0f} min after the change: {verdict}")
    return lines
