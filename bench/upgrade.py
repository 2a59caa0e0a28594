"""`python -m bench.upgrade`: the upgrade path's length, apart from the create path.

A Talos bump is serial by design (one node at a time, health between), so its length grows with
the node count; the create path must not. For each size this creates the cluster in the
lifecycle simulation (harness/lifecycle.py), bumps the Talos patch version, and counts what the
second run did in order: node upgrades, reboots, health gates and the steps that ran. Counts
only: how long one Talos upgrade takes depends on the image pull and the hardware.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.layout import SIZES, cluster_config
from harness.environment import write_program_environment
from harness.lifecycle import Lifecycle
from harness.process_env import patched_environ

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


def measure(sizes: list[int]) -> list[UpgradePath]:
    """The upgrade path at each size, each in a fresh simulation with its own sops environment."""
    with tempfile.TemporaryDirectory() as directory:
        environment = write_program_environment(Path(directory))
        with patched_environ(environment.variables()):
            return [upgrade_path(nodes, environment.secrets_file) for nodes in sizes]


def render(paths: list[UpgradePath]) -> str:
    lines = [
        f"Talos upgrade path (serial by design, one node at a time), bump to {TARGET}:",
        "nodes  upgrades  reboots  health_gates  steps_run  order",
    ]
    for path in paths:
        order = " -> ".join(path.order)
        lines.append(
            f"{path.nodes:<6} {path.upgrades:<9} {path.reboots:<8} {path.health_gates:<13} "
            f"{path.steps:<10} {order}"
        )
    return "\n".join(lines)


def main() -> int:
    print(render(measure(list(SIZES))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
