"""One recorded run + its timing -> the numbers the report prints."""

from __future__ import annotations

from bench.checks import parallel_checks
from bench.graph import DependencyGraph, Step, build_graph
from bench.layout import split
from bench.measure import Timing
from bench.results import ChainStep, SizeResult
from bench.weights import estimate
from harness.engine import ProgramRun


def seconds(step: Step) -> float:
    return estimate(step.kind, step.object_name).seconds


def analyse(nodes: int, run: ProgramRun, timing: Timing) -> SizeResult:
    graph: DependencyGraph = build_graph(run)
    _, critical = graph.longest_chain(lambda _: 1.0, with_flux=False)
    total, weighted = graph.longest_chain(seconds, with_flux=True)
    controlplanes, workers = split(nodes)
    return SizeResult(
        nodes=nodes,
        controlplanes=controlplanes,
        workers=workers,
        cold_s=timing.cold_s,
        median_s=timing.median_s,
        max_s=timing.max_s,
        runs_s=timing.runs_s,
        base_rss_mib=timing.base_rss_mib,
        peak_rss_mib=timing.peak_rss_mib,
        resources=len(run.registrations),
        invokes=len(run.invocations),
        critical_path=[step.name for step in critical],
        estimate_s=total,
        estimate_chain=[ChainStep(s.name, s.kind, seconds(s)) for s in weighted],
        serial_s=sum(seconds(step) for step in graph.steps.values()),
        checks=parallel_checks(graph, weighted),
    )
