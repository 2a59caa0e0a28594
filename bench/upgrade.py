"""`python -m bench.upgrade`: the upgrade path's length, apart from the create path.

A Talos bump is serial by design (one node at a time, health between), so its length grows with
the node count; the create path must not. For each size this creates the cluster in the
lifecycle simulation (harness/lifecycle.py), bumps the Talos patch version, and counts what the
second run did in order: node upgrades, reboots, health gates and the steps that ran. Counts
only: how long one Talos upgrade takes depends on the image pull and the hardware.
"""

from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.layout import SIZES, cluster_config
from harness.environment import write_program_environment
from harness.lifecycle import Lifecycle

TARGET = "v1.12.5"


@dataclass(frozen=True)
class UpgradePath:
    nodes: int
    upgrades: int
    reboots: int
    health_gates: int
    steps: int
    order: list[str]


def upgrade_path(nodes: int, secrets_file: Path) -> UpgradePath:
    config = cluster_config(nodes)
    sim = Lifecycle(str(secrets_file))
    created = sim.up(config)
    if created.error is not None:
        raise RuntimeError(f"create failed at {nodes} nodes: {created.error}")
    bumped = copy.deepcopy(config)
    bumped["cluster"]["talosVersion"] = TARGET
    result = sim.up(bumped)
    if result.error is not None:
        raise RuntimeError(f"upgrade failed at {nodes} nodes: {result.error}")
    return UpgradePath(
        nodes=nodes,
        upgrades=len(result.of("upgrade")),
        reboots=len(result.of("reboot")),
        health_gates=len(result.of("health")),
        steps=len(result.of("step")),
        order=[event[1] for event in result.of("upgrade")],
    )


def main() -> int:
    with tempfile.TemporaryDirectory() as directory:
        environment = write_program_environment(Path(directory))
        os.environ["PATH"] = environment.path()
        os.environ.pop("SOPS_AGE_KEY", None)
        os.environ["SOPS_AGE_KEY_FILE"] = str(environment.age_key)
        paths = [upgrade_path(nodes, environment.secrets_file) for nodes in SIZES]
    print(f"Talos upgrade path (serial by design), {TARGET}:")
    print("nodes  upgrades  reboots  health_gates  steps_run  order")
    for path in paths:
        order = " -> ".join(path.order)
        print(
            f"{path.nodes:<6} {path.upgrades:<9} {path.reboots:<8} {path.health_gates:<13} "
            f"{path.steps:<10} {order}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
