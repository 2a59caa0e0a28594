"""One cluster size's results: what the worker measures and the report prints and saves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ChainStep:
    name: str
    kind: str
    seconds: float


@dataclass(frozen=True)
class SizeResult:
    nodes: int
    controlplanes: int
    workers: int
    cold_s: float
    median_s: float
    max_s: float
    runs_s: list[float]
    base_rss_mib: float
    peak_rss_mib: float
    resources: int  # every registration, components included (the stack itself excluded)
    invokes: int
    # The longest chain of waits in the Pulumi graph, by step count, first step first.
    critical_path: list[str]
    # The same, weighted by bench/weights.py, with the Flux-side layer waits added.
    estimate_s: float
    estimate_chain: list[ChainStep]
    serial_s: float  # every step one after another: what the estimate would be with no parallelism
    checks: dict[str, str]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SizeResult:
        chain = [ChainStep(**step) for step in data["estimate_chain"]]
        return cls(**{**data, "estimate_chain": chain})
