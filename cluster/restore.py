"""Restore: bootstrap etcd from an encrypted snapshot instead of an empty member.

The provider's Bootstrap has no recovery option (terraform-provider-talos v0.11.0,
pkg/talos/talos_machine_bootstrap_resource.go: node, endpoint, client configuration only), so a
restore runs `talosctl bootstrap --recover-from` (cluster/steps.py `recover`) through
pulumi-command in its place, once every control plane's etcd waits in `Preparing` (Talos docs,
"Disaster Recovery"). DayTwo, the Kubernetes certificates and the health gate follow it exactly as
they follow Bootstrap.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

import pulumi
import pulumi_command as command

from cluster import steps
from settings import Settings


def recover_bootstrap(
    parent: pulumi.Resource,
    settings: Settings,
    snapshot: Path,
    talosconfig: pulumi.Output[str],
    *,
    after: Sequence[pulumi.Resource],
    replace_with: Sequence[pulumi.Resource] | None,
) -> command.local.Command:
    first = str(settings.bootstrap_node.ip)
    return command.local.Command(
        "bootstrap-recover",
        # create only: it runs once, when the restored stack first makes it.
        create=steps.recover(first, [str(node.ip) for node in settings.controlplanes]),
        environment={"RECOVER_SNAPSHOT": str(snapshot.resolve())},
        # The prelude's stdin layout; no kubeconfig or Proxmox token exists or is needed yet.
        stdin=pulumi.Output.secret(
            talosconfig.apply(lambda text: f"{base64.b64encode(text.encode()).decode()}\n\n\n")
        ),
        interpreter=steps.INTERPRETER,
        opts=pulumi.ResourceOptions(
            parent=parent,
            # Every control plane must have its config (and so its etcd waiting) before recovery.
            depends_on=list(after),
            # Without `update`, pulumi-command re-runs `create` on any input change
            # (provider/pkg/provider/local/commandController.go): a node added later (a new
            # talosconfig) or the snapshot setting left in place must never recover again.
            ignore_changes=["create", "environment", "stdin"],
            replace_with=list(replace_with) if replace_with else None,
        ),
    )
