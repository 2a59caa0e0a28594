"""The escrowed Talos machine secrets: read back with the real `sops`, checked, ready to adopt.

The file is in the format `talosctl gen secrets` writes: Talos' secrets.Bundle marshalled to YAML
(pkg/machinery/config/generate/secrets/secrets.go: cluster, secrets, trustdinfo, certs, keys in
lower case, certificates and keys as base64 PEM), which is also what the provider's Secrets
import reads (terraform-provider-talos pkg/talos/talos_machine_secrets_resource.go ImportState).
"""

from __future__ import annotations

import os
import shlex
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from settings.errors import ConfigError
from settings.model import Settings
from settings.reader import NAMESPACE
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
# Where the adoption's import reads the bundle: a named pipe, not a file (see serve_import). Its
# path is stable across runs: the engine imports again whenever the import ID differs from the
# one in state (pulumi/pulumi pkg/resource/deploy/step_generator.go, `isImport`).
ADOPT_DIR = Path(".pulumi-adopt")
ADOPT_PIPE = "talos-secrets.yaml"


@dataclass(frozen=True)
class Escrow:
    """The decrypted bundle; never logged, handed on only as a Pulumi secret."""

    path: Path
    bundle: Mapping[str, Any]


@dataclass(frozen=True)
class Decrypter:
    """What `sops decrypt` needs besides the file: the age key file and the environment."""

    age_key_file: Path
    env: Mapping[str, str]


def decrypt_escrow(path: Path, key: str, sops: Decrypter) -> Mapping[str, Any] | None:
    """`sops --decrypt` of an escrow file (as the secrets file is read), or None when there is
    none yet; a failure names the escrow setting."""
    if not path.is_file():
        return None
    try:
        return decrypt_secrets_file(path, sops.age_key_file, sops.env)
    except ConfigError as error:
        raise ConfigError(
            key,
            str(path),
            f"could not be decrypted ({error.problem})",
            "point SOPS_AGE_KEY_FILE at the age key the file is encrypted to, or restore the "
            "file from git",
        ) from None


def load_machine_secrets(path: Path, key: str, sops: Decrypter) -> Escrow | None:
    bundle = decrypt_escrow(path, key, sops)
    if bundle is None:
        return None
    for field in BUNDLE_FIELDS:
        value = bundle_field(bundle, field)
        if not isinstance(value, str) or not value:
            raise ConfigError(
                f"{path}:{'.'.join(field)}",
                REDACTED,
                "is missing: the file is not a `talosctl gen secrets` bundle",
                "restore the file from git history, or remove it to escrow the state's secrets",
            )
    return Escrow(path=path, bundle=bundle)


def bundle_field(bundle: Mapping[str, Any], field: tuple[str, ...]) -> Any:
    """One field of a secrets bundle by its path (BUNDLE_FIELDS), None where it is missing."""
    value: Any = bundle
    for part in field:
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def escrow_command(target: Path) -> str:
    """The command a local.Command runs to escrow its stdin: sops picks the recipients from
    .sops.yaml by the file name (--filename-override), so no plaintext file is ever written."""
    quoted = shlex.quote(str(target))
    return (
        f"sops encrypt --filename-override {quoted} --input-type yaml --output-type yaml "
        f"--output {quoted} /dev/stdin"
    )


def load_deploy_key(path: Path, key: str, sops: Decrypter) -> Mapping[str, str] | None:
    """The escrowed Flux deploy key: the OpenSSH private key and its public line."""
    data = decrypt_escrow(path, key, sops)
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


def load_certificate(path: Path, key: str, sops: Decrypter) -> Mapping[str, Any] | None:
    """The escrowed wildcard certificate Secret, as `kubectl get secret -o yaml` wrote it."""
    secret = decrypt_escrow(path, key, sops)
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


def serve_import(escrow: Escrow) -> str:
    """The import ID for adopting the escrowed secrets: the path of a FIFO that a background
    thread writes the bundle into once, when the provider opens it.

    Why a FIFO: the provider imports Talos secrets only from a path, which its ImportState
    `os.Stat`s and then reads whole with one `os.ReadFile` (terraform-provider-talos v0.11.0,
    pkg/talos/talos_machine_secrets_resource.go, ImportState), so a pipe serves it exactly once
    and the plaintext never lands on disk (secrets live only in `*.enc.*` files). The other way,
    feeding the bundle to getConfiguration directly, would leave no Secrets resource to issue
    the admin client certificate from the escrowed OS CA. The pipe sits in a 0700 directory; a
    run whose state already holds the import (same ID) never opens it, and the daemon thread
    then ends with the program.
    """
    directory = ADOPT_DIR.resolve()
    directory.mkdir(mode=0o700, exist_ok=True)
    directory.chmod(0o700)
    pipe = directory / ADOPT_PIPE
    pipe.unlink(missing_ok=True)
    os.mkfifo(pipe, 0o600)
    text = yaml.safe_dump(dict(escrow.bundle), sort_keys=False)

    def serve() -> None:
        # open() blocks until the provider opens the pipe for reading.
        with pipe.open("w") as handle:
            handle.write(text)

    threading.Thread(target=serve, name="talos-secrets-import", daemon=True).start()
    return str(pipe)


@dataclass(frozen=True)
class EscrowFiles:
    """The escrow files that exist, decrypted; None for each that does not."""

    machine_secrets: Escrow | None
    deploy_key: Mapping[str, str] | None
    certificate: Mapping[str, Any] | None


def load_escrow_files(settings: Settings, env: Mapping[str, str]) -> EscrowFiles:
    """Decrypt the escrow files and check that what backup asks for has one to work from."""
    backup = settings.backup
    sops = Decrypter(settings.gitops.age_key_file, env)
    files = EscrowFiles(
        machine_secrets=load_machine_secrets(
            backup.escrow_file, f"{NAMESPACE}:backup.escrowFile", sops
        ),
        deploy_key=(
            load_deploy_key(backup.deploy_key_file, f"{NAMESPACE}:backup.deployKeyFile", sops)
            if settings.gitops.uses_ssh
            else None
        ),
        certificate=load_certificate(
            backup.certificate_file, f"{NAMESPACE}:backup.certificateFile", sops
        ),
    )
    if backup.restore_from is not None and files.machine_secrets is None:
        raise ConfigError(
            f"{NAMESPACE}:backup.restoreFrom",
            str(backup.restore_from),
            "needs the escrowed Talos secrets the snapshot was taken under "
            f"({backup.escrow_file} does not exist)",
            "restore the escrow file from git",
        )
    if backup.adopt_secrets and files.machine_secrets is None:
        raise ConfigError(
            f"{NAMESPACE}:backup.adoptSecrets",
            True,
            f"needs the escrow file {backup.escrow_file}, which does not exist",
            "restore it from git (or set homelab:backup.escrowFile), or set adoptSecrets: false "
            "to create a new cluster",
        )
    return files
