"""Layering: each object's CRDs come from a layer it waits for; charts wait only where needed."""

from __future__ import annotations

from typing import Any

from gitops.layers import LAYERS as FLUX_LAYERS
from gitops.layers import REQUEUE_DEPENDENCY_SECONDS
from tests.manifests.tree import (
    BEFORE_LAYERS,
    CRD_GROUP_LAYER,
    Index,
    Obj,
    api_group,
    build,
    dig,
    ident,
    index,
    layered_objects,
    upstream_layers,
    walk,
)

# Chart -> what it needs from another chart of its own layer, and why. Nothing else may wait:
# each edge costs a dependency requeue and serialises installs.
NEEDED_EDGES = {
    ("kube-prometheus-stack", "nfs-subdir-external-provisioner"): "PVCs need StorageClass nfs",
    ("loki", "nfs-subdir-external-provisioner"): "its PVC needs StorageClass nfs",
}


def test_crds_are_installed_by_a_layer_waited_for() -> None:
    """Flux's server-side dry-run rejects an object whose CRD does not exist yet, so an object
    must sit in a layer that (transitively) depends on the layer installing its CRD — a layer in
    parallel would race it. This covers every layer of gitops/layers.py, so a reshaped graph that
    could deadlock or race a first deploy fails here."""
    problems = []
    for layer, obj in layered_objects():
        installer = CRD_GROUP_LAYER.get(api_group(obj))
        if installer is None or installer in BEFORE_LAYERS:
            continue
        if installer not in upstream_layers(layer):
            problems.append(
                f"{ident(obj)} ({api_group(obj)}) is in {layer}, which does not wait for "
                f"{installer} (where its CRDs come from)"
            )
    assert not problems, "\n".join(problems)


def _chart(obj: Obj) -> str | None:
    return dig(obj, ("spec", "chart", "spec", "chart")) if obj["kind"] == "HelmRelease" else None


def _installs(group: str, objs: list[Obj]) -> bool:
    def values(obj: Obj, *path: str) -> Any:
        return dig(obj, ("spec", "values", *path))

    if group in ("cert-manager.io", "acme.cert-manager.io"):
        return any(
            _chart(o) == "cert-manager" and values(o, "crds", "enabled") is True for o in objs
        )
    if group == "monitoring.coreos.com":
        return any(_chart(o) == "prometheus-operator-crds" for o in objs)
    if group == "kyverno.io":
        return any(
            _chart(o) == "kyverno" and values(o, "crds", "install") is not False for o in objs
        )
    if group == "traefik.io":
        return any(_chart(o) == "traefik-crds" and values(o, "traefik") is True for o in objs)
    if group == "gateway.networking.k8s.io":
        return any(
            o["kind"] == "Kustomization" and dig(o, ("spec", "path")) == "./config/crd"
            for o in objs
        )
    return False


def test_crd_installer_table_is_true() -> None:
    """The table used above must describe the tree: each group is installed by its layer."""
    wrong = [
        f"{group} (said to come from {layer})"
        for group, layer in CRD_GROUP_LAYER.items()
        if layer not in BEFORE_LAYERS and not _installs(group, list(build(layer)))
    ]
    assert not wrong, f"not installed where the table says: {wrong}"


def test_monitoring_crds_come_only_from_the_crds_layer() -> None:
    """kube-prometheus-stack's bundled copy would fight the crds layer's chart over ownership."""
    kps = index().helmrelease("kube-prometheus-stack")
    assert dig(kps, ("spec", "values", "crds", "enabled")) is False


def _depends_on(idx: Index, name: str) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        for dep in dig(idx.helmrelease(todo.pop()), ("spec", "dependsOn")) or []:
            if dep["name"] not in seen:
                seen.add(dep["name"])
                todo.append(dep["name"])
    return seen


def test_helmrelease_edges_only_where_a_running_service_is_needed() -> None:
    """Charts of a layer install in parallel: the only HelmRelease dependsOn edges are the
    needed ones, none crosses a layer (the layer graph orders those), and there is no cycle."""
    idx = index()
    edges = {
        (hr["metadata"]["name"], dep["name"])
        for hr in idx.of_kind("HelmRelease")
        for dep in hr["spec"].get("dependsOn", [])
    }
    assert edges == set(NEEDED_EDGES)
    for hr in idx.of_kind("HelmRelease"):
        assert hr["metadata"]["name"] not in _depends_on(idx, hr["metadata"]["name"])


def test_monitors_need_only_the_crds_layer() -> None:
    """Every chart that creates a ServiceMonitor/PodMonitor sits in a layer after `crds`."""
    problems = []
    for layer, obj in layered_objects():
        if obj["kind"] != "HelmRelease":
            continue
        monitors = [
            p
            for p, v in walk(obj["spec"].get("values"))
            if p
            and p[-1].lower() in {"servicemonitor", "podmonitor"}
            and isinstance(v, dict)
            and v.get("enabled") is True
        ]
        if monitors and "crds" not in upstream_layers(layer):
            problems.append(f"{ident(obj)} enables {'.'.join(monitors[0])} in {layer}")
    assert not problems, "\n".join(problems)


def _duration_minutes(text: str) -> float:
    number, unit = float(text[:-1]), text[-1]
    return number * {"s": 1 / 60, "m": 1, "h": 60}[unit]


def test_every_layer_timeout_outlasts_its_longest_chain() -> None:
    """A layer waits for all its HelmReleases (wait: true): its timeout must exceed the longest
    chain of their timeouts plus one dependency requeue per edge, or a slow first install fails
    the layer and everything after it waits a retry."""
    problems = []
    for layer in FLUX_LAYERS:
        releases = {
            obj["metadata"]["name"]: obj
            for obj in build(layer.name)
            if obj["kind"] == "HelmRelease"
        }

        def chain(name: str, releases: dict[str, Obj] = releases) -> float:
            spec = releases[name]["spec"]
            before = [
                chain(dep["name"]) + REQUEUE_DEPENDENCY_SECONDS / 60
                for dep in spec.get("dependsOn", [])
                if dep["name"] in releases
            ]
            return max(before, default=0.0) + _duration_minutes(spec.get("timeout", "5m"))

        longest = max((chain(name) for name in releases), default=0.0)
        if longest >= layer.timeout_minutes:
            problems.append(f"{layer.name}: timeout {layer.timeout_minutes}m <= chain {longest}m")
    assert not problems, "\n".join(problems)
