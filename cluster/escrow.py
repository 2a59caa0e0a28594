"""SecretsEscrow: the Talos machine secrets, SOPS-encrypted into the repository, and the check that
the escrow file and the state hold the same cluster.

The export is a `pulumi-command` local.Command that pipes the bundle into the real
`sops encrypt` through stdin: no plaintext file is written. pulumi-command re-runs `create` when
an input (here the stdin) changes and no `update` is given, so the file follows the secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command
import yaml

from settings.escrow import BUNDLE_FIELDS, Escrow, bundle_field, escrow_command


def bundle_of(machine_secrets: Any) -> dict[str, Any]:
    """The provider's machine_secrets output in `talosctl gen secrets` form (both store the PEM
    as base64, so values copy across unchanged)."""
    certs = machine_secrets.certs

    def pair(cert: Any) -> dict[str, str]:
        return {"crt": cert.cert, "key": cert.key}

    return {
        "cluster": {"id": machine_secrets.cluster.id, "secret": machine_secrets.cluster.secret},
        "secrets": {
            "bootstraptoken": machine_secrets.secrets.bootstrap_token,
            "secretboxencryptionsecret": machine_secrets.secrets.secretbox_encryption_secret,
        },
        "trustdinfo": {"token": machine_secrets.trustdinfo.token},
        "certs": {
            "etcd": pair(certs.etcd),
            "k8s": pair(certs.k8s),
            "k8saggregator": pair(certs.k8s_aggregator),
            "k8sserviceaccount": {"key": certs.k8s_serviceaccount.key},
            "os": pair(certs.os),
        },
    }


def differing_fields(escrowed: Mapping[str, Any], state: Mapping[str, Any]) -> list[str]:
    """Which bundle fields differ (names only: the values are secrets)."""
    return [
        ".".join(field)
        for field in BUNDLE_FIELDS
        if bundle_field(escrowed, field) != bundle_field(state, field)
    ]


class EscrowMismatchError(Exception):
    def __init__(self, path: Path, fields: list[str]) -> None:
        super().__init__(
            f"{path} holds other Talos machine secrets than the Pulumi state "
            f"(differing: {', '.join(fields)}). The file belongs to another cluster or the "
            "state was rebuilt without adopting it. To manage the cluster in the file: "
            "`pulumi state delete` the talos:machine/secrets:Secrets resource and run again "
            "with homelab:backup.adoptSecrets: true. To keep the state's cluster: restore the "
            "file from git history, or delete it so the state's secrets are escrowed anew"
        )


@dataclass(frozen=True)
class SecretsEscrowArgs:
    target: Path
    machine_secrets: pulumi.Output[Any]
    # What the file held when the run started, if it existed.
    escrowed: Escrow | None


class SecretsEscrow(pulumi.ComponentResource):
    # The state's bundle, resolved only when it agrees with the escrow file.
    checked_bundle: pulumi.Output[dict[str, Any]]

    def __init__(
        self, name: str, args: SecretsEscrowArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:backup:SecretsEscrow", name, None, opts)

        def check(machine_secrets: Any) -> dict[str, Any]:
            bundle = bundle_of(machine_secrets)
            if args.escrowed is not None:
                fields = differing_fields(args.escrowed.bundle, bundle)
                if fields:
                    raise EscrowMismatchError(args.escrowed.path, fields)
            return bundle

        self.checked_bundle = pulumi.Output.secret(args.machine_secrets.apply(check))
        command.local.Command(
            "talos-secrets-escrow",
            create=escrow_command(args.target),
            stdin=pulumi.Output.secret(
                self.checked_bundle.apply(lambda b: yaml.safe_dump(b, sort_keys=False))
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
