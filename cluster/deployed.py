"""What the cluster runs, read back from this stack's own last successful run."""

from __future__ import annotations

import pulumi

from settings import NAMESPACE, ConfigError, Settings
from settings.backup import check_snapshot
from settings.upgrades import check_moves


def checked_talos_version(settings: Settings) -> pulumi.Output[str]:
    """The configured Talos version, once the move to it from what runs is one Talos supports
    (and, during a restore, the snapshot to recover from is there).

    What runs is this stack's own `deployed` output of its last successful run (a StackReference
    to itself; settings/upgrades.py says why). The Talos version reaches the image, and so every
    node step, only through this check: a refused move stops the run before anything touches a
    node.
    """
    own_stack = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"

    def checked(deployed: object) -> str:
        record = deployed if isinstance(deployed, dict) else None
        try:
            check_moves(settings, record)
            # The restore's snapshot is needed only until the restoring run succeeded.
            check_snapshot(settings.backup, record, f"{NAMESPACE}:backup.restoreFrom")
        except ConfigError as error:
            raise pulumi.RunError(str(error)) from None
        return settings.cluster.talos_version

    reference = pulumi.StackReference("deployed", stack_name=own_stack)
    return reference.get_output("deployed").apply(checked)
