"""The parallelism the design promises, checked on the recorded graph at every size.

Talos secrets and the Image Factory schematic never wait for a VM; ISO downloads and config
applies never wait for each other; so the critical chain holds one node's steps and only
bootstrap, health and GitOps are serial. A change that breaks one of these reads FAIL here.
"""

from __future__ import annotations

from itertools import permutations

from bench.graph import DependencyGraph, Step
from harness.tokens import APPLY, ISO, SCHEMATIC, SECRETS, VM

PER_NODE = (ISO, VM, APPLY)

OK, FAIL, NOT_APPLICABLE = "ok", "FAIL", "n/a"


def parallel_checks(graph: DependencyGraph, chain: list[Step]) -> dict[str, str]:
    vms = {s.key for s in graph.of_kind(VM)}
    early = graph.of_kind(SECRETS) + graph.of_kind(SCHEMATIC)
    return {
        "secrets_schematic_skip_vms": _verdict(
            not any(graph.ancestors(s.key) & vms for s in early)
        ),
        "isos_parallel": _pairwise_independent(graph, graph.of_kind(ISO)),
        "applies_parallel": _pairwise_independent(graph, graph.of_kind(APPLY)),
        "one_node_on_chain": _verdict(
            all(sum(s.kind == kind for s in chain) <= 1 for kind in PER_NODE)
        ),
    }


def _pairwise_independent(graph: DependencyGraph, steps: list[Step]) -> str:
    if len(steps) < 2:
        return NOT_APPLICABLE
    return _verdict(not any(b.key in graph.ancestors(a.key) for a, b in permutations(steps, 2)))


def _verdict(holds: bool) -> str:
    return OK if holds else FAIL
