"""Restore: bootstrap etcd from an encrypted snapshot instead of an empty member.

The provider's Bootstrap has no recovery option, so a restore runs scripts/talos-recover.sh
(`talosctl bootstrap --recover-from`, once every control plane's etcd waits in Preparing) through
pulumi-command in its place. The Command runs once, on create; Kubernetes certificates and the
health gate follow it exactly as they follow Bootstrap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command
import pulumiverse_talos as talos

from settings import Settings

RECOVER_SCRIPT = "scripts/talos-recover.sh"


def recover_bootstrap(
    parent: pulumi.Resource,
    settings: Settings,
    snapshot: Path,
    client_configuration: pulumi.Output[Any],
    depends_on: list[pulumi.Resource],
) -> command.local.Command:
    first = str(settings.bootstrap_node.ip)
    controlplanes = [str(node.ip) for node in settings.controlplanes]
    talosconfig = talos.client.get_configuration_output(
        cluster_name=settings.cluster.name,
        client_configuration=client_configuration,
        endpoints=controlplanes,
        nodes=[first],
        opts=pulumi.InvokeOutputOptions(parent=parent),
    ).talos_config
    return command.local.Command(
        "bootstrap-recover",
        create=RECOVER_SCRIPT,
        environment={
            "RECOVER_SNAPSHOT": str(snapshot),
            "RECOVER_NODE": first,
            "RECOVER_CONTROLPLANES": " ".join(controlplanes),
            "RECOVER_TALOSCONFIG": pulumi.Output.secret(talosconfig),
        },
        # Every control plane must have its config (and so its etcd waiting) before recovery.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on),
    )
