"""Which version moves one `pulumi up` may make, judged against what the cluster runs.

What the cluster runs is what the last successful run deployed: the program exports it as the
stack output `deployed` and reads it back at the start of the next run through a StackReference
to its own stack. The engine answers a StackReference from the named stack's last checkpoint
(pulumi/pulumi, pkg/resource/deploy/builtins.go readStackReference → pkg/backend/backend.go
GetStackOutputs), and stack outputs change only when a run completes, so a failed or partial run
leaves the previous versions in place. A read-only talosctl query was the alternative; it would
tie every run (and every preview) to reaching the nodes, which item 6 forbids.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from settings.errors import ConfigError
from settings.model import Settings
from settings.reader import NAMESPACE

NAMESPACE_PREFIX = f"{NAMESPACE}:"

_MINOR = re.compile(r"^v?(\d+)\.(\d+)\.")
# A Talos minor upgrades only from the two minors before it: siderolabs/talos v1.12.4,
# pkg/machinery/compatibility/talos112/talos112.go, MinimumHostUpgradeVersion = 1.10.0 (and
# talos113: 1.11.0). Talos itself refuses the jump only once the node is asked to upgrade.
TALOS_MINOR_SPAN = 2


def deployed_record(settings: Settings) -> dict[str, Any]:
    """What this run leaves deployed, exported for the next run."""
    return {
        "talosVersion": settings.cluster.talos_version,
        "kubernetesVersion": settings.cluster.kubernetes_version,
        "controlplanes": len(settings.controlplanes),
    }


def check_moves(settings: Settings, deployed: Mapping[str, Any] | None) -> None:
    """Refuse a move Talos or Kubernetes does not support, before anything runs."""
    if not deployed:
        return  # the first run creates the cluster: nothing to move from
    running = deployed.get("talosVersion")
    target = settings.cluster.talos_version
    if running and _minor(target)[1] - _minor(running)[1] > TALOS_MINOR_SPAN:
        lowest = f"v{_minor(target)[0]}.{_minor(target)[1] - TALOS_MINOR_SPAN}"
        raise ConfigError(
            f"{NAMESPACE_PREFIX}cluster.talosVersion",
            target,
            f"cannot be reached from the running {running}: a Talos minor upgrades only "
            f"from the {TALOS_MINOR_SPAN} minors before it",
            f"upgrade to the latest {lowest}.x patch first, run `pulumi up`, then come back",
        )
    if _minor(target) < _minor(running or target):
        raise ConfigError(
            f"{NAMESPACE_PREFIX}cluster.talosVersion",
            target,
            f"is older than the running {running}: this program does not downgrade Talos",
            f"set {running} or newer",
        )
    k8s_running = deployed.get("kubernetesVersion")
    k8s_target = settings.cluster.kubernetes_version
    if k8s_running and k8s_target:
        have, want = _minor(k8s_running), _minor(k8s_target)
        if want < have or want[1] - have[1] > 1:
            raise ConfigError(
                f"{NAMESPACE_PREFIX}cluster.kubernetesVersion",
                k8s_target,
                f"is not one step from the running {k8s_running}: `talosctl upgrade-k8s` moves "
                "Kubernetes to the same minor or the next",
                f"set a v{have[0]}.{have[1] + 1}.x (or v{have[0]}.{have[1]}.x) release first",
            )


def _minor(version: str) -> tuple[int, int]:
    match = _MINOR.match(version)
    return (int(match[1]), int(match[2])) if match else (0, 0)
