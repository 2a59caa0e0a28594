"""`python -m bench`: evaluate the program at 1, 3, 10 and 30 nodes; print and save the results.

Exits 1 when a parallelism check fails (the graph is deterministic, so that is a regression);
timing targets are reported, not enforced: they depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import upgrade
from bench.checks import FAIL
from bench.layout import SIZES
from bench.report import render, slope
from bench.results import SizeResult
from bench.weights import DEFAULT_SECONDS, ESTIMATES
from harness.engine import PROJECT_ROOT

DEFAULT_JSON = PROJECT_ROOT / "bench" / "results" / "latest.json"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=9, help="timed evaluations per size")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="node counts")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to save results")
    args = parser.parse_args()

    results = [run_size(nodes, args.runs) for nodes in sorted(args.sizes)]
    print(render(results, args.runs, os.cpu_count()))
    # The day-two path, apart from the create path: it grows with the node count by design.
    paths = upgrade.measure(sorted(args.sizes))
    print("\n" + upgrade.render(paths))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    saved = {**document(results, args.runs), "upgrade_paths": [asdict(path) for path in paths]}
    args.json.write_text(json.dumps(saved, indent=2) + "\n")
    print(f"\nsaved: {args.json}")
    return 1 if any(FAIL in r.checks.values() for r in results) else 0


def run_size(nodes: int, runs: int) -> SizeResult:
    """One size in its own interpreter: see bench/worker.py."""
    with tempfile.TemporaryDirectory(prefix="bench-") as directory:
        out = Path(directory) / "result.json"
        command = [sys.executable, "-m", "bench.worker", "--nodes", str(nodes)]
        subprocess.run(
            [*command, "--runs", str(runs), "--out", str(out)], cwd=PROJECT_ROOT, check=True
        )
        return SizeResult.from_json(json.loads(out.read_text()))


def document(results: list[SizeResult], runs: int) -> dict[str, Any]:
    """The saved results: enough context to compare two runs of the bench."""
    found = slope(results)
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain")),
        "python": platform.python_version(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "runs_per_size": runs,
        "per_node_slope_s": found.per_node_s,
        "intercept_s": found.intercept_s,
        "sizes": [asdict(r) for r in results],
        "estimates": {
            "default_s": DEFAULT_SECONDS,
            "table": [
                {"type": kind, "object_name": name, "seconds": e.seconds, "why": e.why}
                for (kind, name), e in ESTIMATES.items()
            ],
        },
    }


def _git(*args: str) -> str | None:
    found = subprocess.run(
        ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    return found.stdout.strip() if found.returncode == 0 else None


if __name__ == "__main__":
    sys.exit(main())
