"""Wall time and peak RSS of evaluating the program in this process."""

from __future__ import annotations

import gc
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.engine import ProgramRun


@dataclass(frozen=True)
class Timing:
    cold_s: float  # the first evaluation: pays the provider SDK imports, as a fresh preview does
    runs_s: list[float]  # the timed evaluations after it
    base_rss_mib: float  # before the first evaluation: interpreter, pulumi, the harness
    peak_rss_mib: float

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs_s)

    @property
    def max_s(self) -> float:
        return max(self.runs_s)


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def time_evaluations(evaluate: Callable[[], ProgramRun], runs: int) -> tuple[Timing, ProgramRun]:
    """One warm-up evaluation, then `runs` timed ones; returns the timing and the last run."""
    base = peak_rss_mib()
    start = time.perf_counter()
    run = evaluate()
    cold = time.perf_counter() - start
    times: list[float] = []
    for _ in range(runs):
        # Collect the previous run's garbage outside the clock: each timed run starts clean.
        gc.collect()
        start = time.perf_counter()
        run = evaluate()
        times.append(time.perf_counter() - start)
    return Timing(cold, times, base, peak_rss_mib()), run
