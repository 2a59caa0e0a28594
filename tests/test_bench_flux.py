"""bench/flux.py: the Flux part of the deploy estimate follows the committed graph and charges
the dependency requeue on every edge."""

from __future__ import annotations

from dataclasses import replace

from bench import flux
from gitops.layers import LAYERS


def test_the_after_graph_is_the_committed_tree() -> None:
    graph = flux.after()
    assert set(graph.layers) == {layer.name for layer in LAYERS}
    assert graph.charts["infrastructure"]["kube-prometheus-stack"] == (
        "nfs-subdir-external-provisioner",
    )
    assert graph.charts["infrastructure"]["cert-manager"] == ()
    assert set(graph.charts["crds"]) == {"gateway-api", "prometheus-operator-crds", "traefik-crds"}
    # Every chart of the tree has a figure.
    assert {c for charts in graph.charts.values() for c in charts} <= set(flux.CHARTS)


def test_each_edge_costs_a_requeue() -> None:
    graph = flux.after()
    slower = replace(graph, requeue_s=graph.requeue_s + 10)
    total, chain = flux.total_seconds(graph)
    slower_total, _ = flux.total_seconds(slower)
    # Three layer edges on the chain, plus the nfs -> kube-prometheus-stack edge inside one.
    assert chain == ["crds", "infrastructure", "infrastructure-config", "apps"]
    assert slower_total - total == 10 * 4


def test_the_reshape_meets_the_target_and_beats_before() -> None:
    after, _ = flux.total_seconds(flux.after())
    before, _ = flux.total_seconds(flux.BEFORE)
    assert after <= flux.TARGET_S < before


def test_a_layer_slower_than_its_timeout_waits_a_retry() -> None:
    graph = replace(flux.after(), timeouts_s={**flux.after().timeouts_s, "infrastructure": 60})
    assert flux.layer_seconds(graph, "infrastructure") >= 60 + flux.RETRY_INTERVAL_S
