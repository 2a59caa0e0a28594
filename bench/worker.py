"""One cluster size in a fresh interpreter (bench/__main__.py starts one per size).

A process per size gives each size its own peak RSS and its own cold first evaluation; the
timed evaluations still run in-process, back to back.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import asdict
from pathlib import Path

from bench.analyse import analyse
from bench.layout import cluster_config
from bench.measure import time_evaluations
from harness.engine import run_program
from harness.environment import write_program_environment
from harness.process_env import patched_environ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-") as directory:
        environment = write_program_environment(Path(directory))
        config = {**cluster_config(args.nodes), "secretsFile": str(environment.secrets_file)}
        with patched_environ(environment.variables()):
            timing, run = time_evaluations(lambda: run_program(config), args.runs)

    result = analyse(args.nodes, run, timing)
    args.out.write_text(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
