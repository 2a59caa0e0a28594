"""The parallelism the design promises, checked on the recorded graph at every size.

Talos secrets and the Image Factory schematic never wait for a VM; ISO downloads and installs
(the `<node>-config` applies) never wait for each other; so the critical chain holds one node's
ISO, VM and install, and only bootstrap, the day-two steps (serial by design, each a no-op
`echo` on create), health and GitOps are serial. A change that breaks one of these reads FAIL.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from itertools import permutations

from bench.graph import DependencyGraph, Step
from harness.tokens import APPLY, ISO, SCHEMATIC, SECRETS, VM

INSTALL = "*-config"  # cluster/component.py: each node's install apply

OK, FAIL, NOT_APPLICABLE = "ok", "FAIL", "n/a"


def parallel_checks(graph: DependencyGraph, chain: list[Step]) -> dict[str, str]:
    vms = {s.key for s in graph.of_kind(VM)}
    early = graph.of_kind(SECRETS) + graph.of_kind(SCHEMATIC)
    return {
        "secrets_schematic_skip_vms": _verdict(
            not any(graph.ancestors(s.key) & vms for s in early)
        ),
        "isos_parallel": _pairwise_independent(graph, graph.of_kind(ISO)),
        "applies_parallel": _pairwise_independent(graph, _installs(graph.of_kind(APPLY))),
        "one_node_on_chain": _verdict(
            all(
                len(steps) <= 1
                for steps in (
                    [s for s in chain if s.kind == ISO],
                    [s for s in chain if s.kind == VM],
                    _installs([s for s in chain if s.kind == APPLY]),
                )
            )
        ),
    }


def _installs(applies: list[Step]) -> list[Step]:
    return [s for s in applies if fnmatchcase(s.name, INSTALL)]


def _pairwise_independent(graph: DependencyGraph, steps: list[Step]) -> str:
    if len(steps) < 2:
        return NOT_APPLICABLE
    return _verdict(not any(b.key in graph.ancestors(a.key) for a, b in permutations(steps, 2)))


def _verdict(holds: bool) -> str:
    return OK if holds else FAIL
