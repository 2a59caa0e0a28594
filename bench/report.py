"""Plain aligned tables for the terminal (and README), and the per-node slope."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from bench import flux
from bench.results import SizeResult

# The targets, for a 2-core machine.
TARGETS_S = {1: 1.0, 30: 3.0}

Column = tuple[str, Callable[[SizeResult], object]]

EVALUATION: list[Column] = [
    ("nodes", lambda r: r.nodes),
    ("cp", lambda r: r.controlplanes),
    ("workers", lambda r: r.workers),
    ("median_s", lambda r: f"{r.median_s:.3f}"),
    ("p_max_s", lambda r: f"{r.max_s:.3f}"),
    ("cold_s", lambda r: f"{r.cold_s:.2f}"),
    ("peak_rss_mib", lambda r: f"{r.peak_rss_mib:.0f}"),
    ("resources", lambda r: r.resources),
    ("invokes", lambda r: r.invokes),
    ("critical_path_len", lambda r: len(r.critical_path)),
]
ESTIMATE: list[Column] = [
    ("nodes", lambda r: r.nodes),
    ("estimate_s", lambda r: f"{r.estimate_s:.0f}"),
    ("estimate_min", lambda r: f"{r.estimate_s / 60:.1f}"),
    ("serial_s", lambda r: f"{r.serial_s:.0f}"),
    ("parallel_x", lambda r: f"{r.serial_s / r.estimate_s:.1f}"),
    ("chain_steps", lambda r: len(r.estimate_chain)),
]


@dataclass(frozen=True)
class Slope:
    per_node_s: float
    intercept_s: float
    between_sizes: list[tuple[int, int, float]]  # (from nodes, to nodes, s per added node)


def table(columns: Sequence[Column], results: Sequence[SizeResult]) -> str:
    cells = [[header for header, _ in columns]]
    cells += [[str(value(r)) for _, value in columns] for r in results]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def slope(results: Sequence[SizeResult]) -> Slope:
    """Least squares of median time over node count, plus the slope between adjacent sizes."""
    xs = [float(r.nodes) for r in results]
    ys = [r.median_s for r in results]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    per_node = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    between = [
        (a.nodes, b.nodes, (b.median_s - a.median_s) / (b.nodes - a.nodes))
        for a, b in pairwise(results)
    ]
    return Slope(per_node, mean_y - per_node * mean_x, between)


def render(results: Sequence[SizeResult], runs: int, cpus: int | None) -> str:
    return "\n".join(
        [
            f"Program evaluation under Pulumi mocks ({runs} timed runs per size after a warm-up,"
            f" {cpus} CPUs)",
            table(EVALUATION, results),
            *_slope_lines(results),
            *_target_lines(results),
            "",
            "Critical path (longest chain of waits in the Pulumi graph, by step count):",
            *(f"{r.nodes:>3} nodes: {' -> '.join(r.critical_path)}" for r in results),
            "",
            "Deploy estimate (critical path weighted by bench/weights.py, Flux layer waits added):",
            table(ESTIMATE, results),
            *(_estimate_chain(r) for r in results),
            "",
            *flux.report(),
            "",
            "Parallelism checks:",
            _checks_table(results),
        ]
    )


def _slope_lines(results: Sequence[SizeResult]) -> list[str]:
    if len(results) < 2:
        return []
    found = slope(results)
    between = ", ".join(f"{a}->{b}: {s:.4f}" for a, b, s in found.between_sizes)
    return [
        f"per-node slope: {found.per_node_s:.4f} s/node "
        f"(least squares over the sizes, intercept {found.intercept_s:.3f} s)",
        f"between sizes (s/node): {between}",
    ]


def _target_lines(results: Sequence[SizeResult]) -> list[str]:
    lines: list[str] = []
    for r in results:
        if r.nodes in TARGETS_S:
            limit = TARGETS_S[r.nodes]
            verdict = "met" if r.median_s < limit else "MISSED"
            lines.append(f"target: {r.nodes} node(s) under {limit:.0f} s median: {verdict}")
    return lines


def _estimate_chain(r: SizeResult) -> str:
    steps = " -> ".join(f"{step.name} {step.seconds:.0f}" for step in r.estimate_chain)
    return f"{r.nodes:>3} nodes: {steps} = {r.estimate_s:.0f} s"


def _checks_table(results: Sequence[SizeResult]) -> str:
    names = list(results[0].checks)
    columns: list[Column] = [("nodes", lambda r: r.nodes)]
    columns += [(name, lambda r, name=name: r.checks[name]) for name in names]
    return table(columns, results)
