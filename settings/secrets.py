"""Decrypt the SOPS secrets file with the real `sops` CLI; each value leaves as a Pulumi secret."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi

from settings.errors import ConfigError
from settings.model import SecretValues, Settings
from settings.parse import NAMESPACE, SUBSTITUTION_VAR

REDACTED = "<redacted>"
_API_TOKEN = re.compile(r"^[^@\s]+@[^!\s]+![^=\s]+=[0-9a-fA-F-]{36}$")
_EDIT_FIX = "run `mise run sops:edit` (or `sops edit {file}`) and add it as in secrets.example.yaml"


def decrypt_secrets_file(path: Path) -> Mapping[str, Any]:
    """Run `sops --decrypt` on the file; every failure becomes one ConfigError with its fix."""
    key = f"{NAMESPACE}:secretsFile"
    if not path.is_file():
        raise ConfigError(
            key,
            str(path),
            "does not exist",
            "copy secrets.example.yaml to secrets.yaml, fill it in, then run "
            f"`sops encrypt secrets.yaml > {path}` and delete secrets.yaml",
        )
    sops = shutil.which("sops")
    if sops is None:
        raise ConfigError(
            key,
            str(path),
            "cannot be decrypted: the `sops` binary is not on PATH",
            "run `mise install` (it pins sops) or install sops from getsops.io",
        )
    result = subprocess.run(
        [sops, "--decrypt", "--output-type", "json", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no error output"])[-1]
        raise ConfigError(
            key,
            str(path),
            f"sops could not decrypt it ({reason})",
            "point SOPS_AGE_KEY_FILE at the age key the file is encrypted to "
            "(default .age-key.txt), or re-encrypt the file to your key",
        )
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise ConfigError(
            key, str(path), "did not decrypt to a mapping", _EDIT_FIX.format(file=path)
        )
    return data


def secret_values(
    data: Mapping[str, Any], settings: Settings, env: Mapping[str, str]
) -> SecretValues:
    """Check the decrypted document's shape and hand every value on only as a Pulumi secret."""
    file = settings.secrets_file
    proxmox = data.get("proxmox")
    token = proxmox.get("apiToken") if isinstance(proxmox, Mapping) else None
    if not isinstance(token, str) or not token:
        raise _missing(file, "proxmox.apiToken")
    if not _API_TOKEN.match(token):
        raise ConfigError(
            f"{file}:proxmox.apiToken",
            REDACTED,
            "is not a Proxmox API token",
            "write it as USER@REALM!TOKENID=UUID, as Proxmox shows it when you create the token",
        )
    cluster_secrets = data.get("clusterSecrets", {})
    if not isinstance(cluster_secrets, Mapping):
        raise ConfigError(
            f"{file}:clusterSecrets", REDACTED, "must be a mapping", _EDIT_FIX.format(file=file)
        )
    for name, value in cluster_secrets.items():
        if not SUBSTITUTION_VAR.match(str(name)) or not isinstance(value, str | int):
            raise ConfigError(
                f"{file}:clusterSecrets.{name}",
                REDACTED,
                "must be an UPPER_CASE name with a string value",
                "rename the key or quote the value",
            )
    git_token = None
    if not settings.gitops.uses_ssh:
        git = data.get("git")
        git_token = git.get("httpsToken") if isinstance(git, Mapping) else None
        if not isinstance(git_token, str) or not git_token:
            raise _missing(file, "git.httpsToken")
    return SecretValues(
        proxmox_api_token=pulumi.Output.secret(token),
        cluster_secrets=pulumi.Output.secret(
            {str(name): str(value) for name, value in sorted(cluster_secrets.items())}
        ),
        git_https_token=pulumi.Output.secret(git_token) if git_token else None,
        age_key=pulumi.Output.secret(read_age_key(settings.gitops.age_key_file, env)),
    )


def read_age_key(path: Path, env: Mapping[str, str]) -> str:
    """The age identity Flux gets as `sops-age`: SOPS_AGE_KEY itself (as sops reads it, e.g. in
    CI), else the key file. Missing or malformed is a ConfigError."""
    key = "SOPS_AGE_KEY_FILE"
    if env.get("SOPS_AGE_KEY"):
        text = env["SOPS_AGE_KEY"]
        if "AGE-SECRET-KEY-" not in text:
            raise ConfigError(
                "SOPS_AGE_KEY", REDACTED, "holds no age private key", "unset it or fix its value"
            )
        return text.strip() + "\n"
    if not path.is_file():
        raise ConfigError(
            key,
            str(path),
            "names no file, so Flux could not decrypt SOPS files in git",
            "run `age-keygen -o .age-key.txt` (or point SOPS_AGE_KEY_FILE at your key) and "
            "encrypt the secrets file to its public key",
        )
    text = path.read_text()
    if "AGE-SECRET-KEY-" not in text:
        raise ConfigError(
            key,
            str(path),
            "holds no age private key (AGE-SECRET-KEY-…)",
            "point it at the file `age-keygen` wrote",
        )
    return text


def _missing(file: Path, key: str) -> ConfigError:
    return ConfigError(
        f"{file}:{key}", None, "is missing from the decrypted secrets", _EDIT_FIX.format(file=file)
    )
