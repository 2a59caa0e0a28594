"""The escrowed Talos machine secrets: read back with the real `sops`, checked, ready to adopt.

The file is in the format `talosctl gen secrets` writes: Talos' secrets.Bundle marshalled to YAML
(pkg/machinery/config/generate/secrets/secrets.go: cluster, secrets, trustdinfo, certs, keys in
lower case, certificates and keys as base64 PEM), which is also what the provider's Secrets
import reads (terraform-provider-talos pkg/talos/talos_machine_secrets_resource.go ImportState).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from settings.errors import ConfigError
from settings.secrets import decrypt_secrets_file

REDACTED = "<redacted>"
# Every leaf `talosctl gen secrets` writes for a Talos >= 1.3 cluster (secretbox, not AES-CBC).
BUNDLE_FIELDS = (
    ("cluster", "id"),
    ("cluster", "secret"),
    ("secrets", "bootstraptoken"),
    ("secrets", "secretboxencryptionsecret"),
    ("trustdinfo", "token"),
    ("certs", "etcd", "crt"),
    ("certs", "etcd", "key"),
    ("certs", "k8s", "crt"),
    ("certs", "k8s", "key"),
    ("certs", "k8saggregator", "crt"),
    ("certs", "k8saggregator", "key"),
    ("certs", "k8sserviceaccount", "key"),
    ("certs", "os", "crt"),
    ("certs", "os", "key"),
)
# Where the plaintext waits for the provider's import (it reads a file path): private to the user,
# stable across runs (the engine re-imports when the import ID changes,
# pkg/resource/deploy/step_generator.go in pulumi/pulumi), removed once the import has run.
ADOPT_DIR = Path(".pulumi-adopt")


@dataclass(frozen=True)
class Escrow:
    """The decrypted bundle; never logged, handed on only as a Pulumi secret."""

    path: Path
    bundle: Mapping[str, Any]


def decrypt_escrow(path: Path, key: str) -> Mapping[str, Any] | None:
    """`sops --decrypt` of an escrow file (as the secrets file is read), or None when there is
    none yet; a failure names the escrow setting."""
    if not path.is_file():
        return None
    try:
        return decrypt_secrets_file(path)
    except ConfigError as error:
        raise ConfigError(
            key,
            str(path),
            f"could not be decrypted ({error.problem})",
            "point SOPS_AGE_KEY_FILE at the age key the file is encrypted to, or restore the "
            "file from git",
        ) from None


def load_machine_secrets(path: Path, key: str) -> Escrow | None:
    bundle = decrypt_escrow(path, key)
    if bundle is None:
        return None
    for field in BUNDLE_FIELDS:
        value: Any = bundle
        for part in field:
            value = value.get(part) if isinstance(value, Mapping) else None
        if not isinstance(value, str) or not value:
            raise ConfigError(
                f"{path}:{'.'.join(field)}",
                REDACTED,
                "is missing: the file is not a `talosctl gen secrets` bundle",
                "restore the file from git history, or remove it to escrow the state's secrets",
            )
    return Escrow(path=path, bundle=bundle)


def escrow_command(target: Path) -> str:
    """The command a local.Command runs to escrow its stdin: sops picks the recipients from
    .sops.yaml by the file name (--filename-override), so no plaintext file is ever written."""
    quoted = shlex.quote(str(target))
    return (
        f"sops encrypt --filename-override {quoted} --input-type yaml --output-type yaml "
        f"--output {quoted} /dev/stdin"
    )


def load_deploy_key(path: Path, key: str) -> Mapping[str, str] | None:
    """The escrowed Flux deploy key: the OpenSSH private key and its public line."""
    data = decrypt_escrow(path, key)
    if data is None:
        return None
    private, public = data.get("identity"), data.get("identity.pub")
    if not (
        isinstance(private, str)
        and "OPENSSH PRIVATE KEY" in private
        and isinstance(public, str)
        and public.startswith("ssh-")
    ):
        raise ConfigError(
            key,
            str(path),
            "does not hold a deploy key (identity, identity.pub)",
            "restore it from git history, or delete it to escrow the state's key",
        )
    return {"identity": private, "identity.pub": public}


def load_certificate(path: Path, key: str) -> Mapping[str, Any] | None:
    """The escrowed wildcard certificate Secret, as `kubectl get secret -o yaml` wrote it."""
    secret = decrypt_escrow(path, key)
    if secret is None:
        return None
    data = secret.get("data")
    if (
        secret.get("kind") != "Secret"
        or secret.get("type") != "kubernetes.io/tls"
        or not isinstance(data, Mapping)
        or not {"tls.crt", "tls.key"} <= set(data)
    ):
        raise ConfigError(
            key,
            str(path),
            "is not a kubernetes.io/tls Secret with tls.crt and tls.key",
            "export it again with `mise run cert:export`, or delete it",
        )
    return secret


def write_import_file(escrow: Escrow) -> str:
    """The plaintext bundle for the provider's import, 0600 in a 0700 directory."""
    ADOPT_DIR.mkdir(mode=0o700, exist_ok=True)
    target = (ADOPT_DIR / "talos-secrets.yaml").resolve()
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        yaml.safe_dump(dict(escrow.bundle), handle, sort_keys=False)
    return str(target)


def remove_import_file(path: str) -> None:
    Path(path).unlink(missing_ok=True)
