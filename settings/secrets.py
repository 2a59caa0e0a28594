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
from settings.parse import SUBSTITUTION_VAR
from settings.reader import NAMESPACE

REDACTED = "<redacted>"
_API_TOKEN = re.compile(r"^[^@\s]+@[^!\s]+![^=\s]+=[0-9a-fA-F-]{36}$")
# secrets.example.yaml's token: the right shape, but no token Proxmox would ever issue.
_PLACEHOLDER_UUID = "00000000-0000-0000-0000-000000000000"
_EDIT_FIX = "run `mise run sops:edit` (or `sops edit {file}`) and add it as in secrets.example.yaml"
# sops matches .sops.yaml's creation rules against the *input* name, so encrypting secrets.yaml
# needs --filename-override to pick the *.enc.yaml rule; --output is written only on success.
# `sops encrypt` and --filename-override exist since sops 3.9.0 (getsops/sops CHANGELOG.md,
# 3.9.0: PRs 1391 and 1332). README.md documents this exact command; tests/test_secrets.py runs it.
ENCRYPT_COMMAND = "sops encrypt --filename-override {file} --output {file} secrets.yaml"
# sops's exit status when no master key could decrypt the data key (cmd/sops/codes/codes.go).
_COULD_NOT_RETRIEVE_KEY = 128


def decrypt_secrets_file(
    path: Path, age_key_file: Path, env: Mapping[str, str]
) -> Mapping[str, Any]:
    """Run `sops decrypt` on the file; every failure becomes one ConfigError with its fix.

    sops gets SOPS_AGE_KEY_FILE = age_key_file (the environment's SOPS_AGE_KEY_FILE, else
    homelab:gitops.ageKeyFile, see settings/parse.py), so the key that decrypts here is the key
    Flux gets. sops does not choose one key source: it loads the identities of SOPS_AGE_KEY,
    SOPS_AGE_KEY_FILE, SOPS_AGE_KEY_CMD and ~/.config/sops/age/keys.txt together and tries them
    all (getsops/sops age/keysource.go, MasterKey.loadIdentities), so SOPS_AGE_KEY still works.
    """
    key = f"{NAMESPACE}:secretsFile"
    if not path.is_file():
        raise ConfigError(
            key,
            str(path),
            "does not exist",
            "copy secrets.example.yaml to secrets.yaml, fill it in, then run "
            f"`{ENCRYPT_COMMAND.format(file=path)}` and delete secrets.yaml",
        )
    sops = shutil.which("sops", path=env.get("PATH"))
    if sops is None:
        raise ConfigError(
            key,
            str(path),
            "cannot be decrypted: the `sops` binary is not on PATH",
            "run `mise install` (it pins sops) or install sops from getsops.io",
        )
    sops_env = {**env, "SOPS_AGE_KEY_FILE": str(age_key_file)}
    result = _sops(sops, ["decrypt", "--output-type", "json", str(path)], sops_env)
    if result.returncode != 0:
        if not _is_encrypted(sops, path, sops_env):
            raise ConfigError(
                key,
                str(path),
                "is not encrypted (sops finds no sops metadata in it)",
                f"encrypt your secrets.yaml with `{ENCRYPT_COMMAND.format(file=path)}`, "
                f"or a plain copy in place with `sops encrypt --in-place {path}`",
            )
        reason = _one_line(result.stderr)
        if result.returncode == _COULD_NOT_RETRIEVE_KEY:
            fix = (
                f"point SOPS_AGE_KEY_FILE (or homelab:gitops.ageKeyFile, now {age_key_file}) at "
                "the age key the file is encrypted to, or re-encrypt the file to your key"
            )
            if not age_key_file.is_file():
                fix += f" (a new key: `age-keygen -o {age_key_file}`, its public key in .sops.yaml)"
        else:
            fix = "correct what sops reports"
        raise ConfigError(key, str(path), f"sops could not decrypt it ({reason})", fix)
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise ConfigError(
            key, str(path), "did not decrypt to a mapping", _EDIT_FIX.format(file=path)
        )
    return data


def _sops(sops: str, args: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sops, *args], capture_output=True, text=True, check=False, env=dict(env))


def _is_encrypted(sops: str, path: Path, env: Mapping[str, str]) -> bool:
    """sops's own test for sops metadata: `sops filestatus` prints {"encrypted": bool}
    (cmd/sops/subcommand/filestatus); a file it cannot even parse counts as encrypted, so the
    decrypt error (the parse error) is what the user sees."""
    result = _sops(sops, ["filestatus", str(path)], env)
    try:
        status = json.loads(result.stdout)
    except json.JSONDecodeError:
        return True
    return not (isinstance(status, dict) and status.get("encrypted") is False)


def _one_line(stderr: str) -> str:
    """sops's whole message on one line: it wraps the reason over several `| `-prefixed lines,
    and the last line alone ("but none were.") says nothing."""
    lines = (line.strip().lstrip("-| ") for line in stderr.splitlines())
    return " ".join(line for line in lines if line) or "no error output"


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
    if token.endswith(_PLACEHOLDER_UUID):
        raise ConfigError(
            f"{file}:proxmox.apiToken",
            REDACTED,
            "is the all-zero placeholder of secrets.example.yaml",
            "paste the token Proxmox showed when you created it",
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
