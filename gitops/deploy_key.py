"""The Flux deploy key: generated once, SOPS-escrowed into the repository, adopted on a rebuild so
the Git host needs no new key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pulumi
import pulumi_command as command
import pulumi_tls as tls
import yaml

from settings.escrow import escrow_command


class DeployKeyMismatchError(Exception):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path} holds another Flux deploy key than the Pulumi state. To keep the key the Git "
            "host knows, run with homelab:backup.adoptSecrets: true; to keep the state's key, "
            "restore the file from git history or delete it so the state's key is escrowed anew"
        )


def deploy_key(
    parent: pulumi.Resource,
    target: Path,
    escrowed: Mapping[str, str] | None,
    adopt: bool,
) -> tuple[pulumi.Output[str], pulumi.Output[str], tls.PrivateKey | None]:
    """(private OpenSSH key, public line, the generated key resource or None when adopted)."""
    if adopt and escrowed is not None:
        # The key the Git host already trusts: nothing to generate, nothing to escrow again.
        return (
            pulumi.Output.secret(escrowed["identity"]),
            pulumi.Output.from_input(escrowed["identity.pub"]),
            None,
        )
    # Same name and parent as before escrow existed, so existing stacks keep their key.
    key = tls.PrivateKey(
        "flux-deploy-key", algorithm="ED25519", opts=pulumi.ResourceOptions(parent=parent)
    )

    def check(pair: list[str]) -> dict[str, str]:
        private, public = pair
        if escrowed is not None and escrowed["identity.pub"].strip() != public.strip():
            raise DeployKeyMismatchError(target)
        return {"identity": private, "identity.pub": public}

    document = pulumi.Output.secret(
        pulumi.Output.all(key.private_key_openssh, key.public_key_openssh).apply(check)
    )
    command.local.Command(
        "flux-deploy-key-escrow",
        create=escrow_command(target),
        stdin=pulumi.Output.secret(document.apply(lambda d: yaml.safe_dump(d, sort_keys=False))),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return (
        pulumi.Output.secret(document.apply(lambda d: d["identity"])),
        pulumi.Output.unsecret(document.apply(lambda d: d["identity.pub"])),
        key,
    )
