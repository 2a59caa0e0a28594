"""The SOPS secrets file: decrypted by the real sops CLI, each value handed on as a secret."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.runtime import mocks
from pulumi.runtime.sync_await import _sync_await

from harness.environment import CLUSTER_SECRETS, PROXMOX_TOKEN, committed_config, secrets_document
from harness.providers import HomelabMocks
from settings import ConfigError, decrypt_secrets_file, parse_settings, secret_values
from settings.secrets import read_age_key


def resolved(output: pulumi.Output[Any]) -> tuple[Any, bool]:
    return _sync_await(output.future()), _sync_await(output.is_secret())


def test_every_decrypted_value_leaves_the_loader_as_a_secret(
    stub_sops: Path, secrets_file: Path, age_key: Path
) -> None:
    mocks.set_mocks(HomelabMocks(), project="homelab", stack="homelab")
    config = committed_config()
    config["gitops"]["repository"] = "https://github.com/example/homelab.git"
    env = {"SOPS_AGE_KEY_FILE": str(age_key)}
    settings = parse_settings({**config, "secretsFile": str(secrets_file)}, env)
    document = {**secrets_document(), "git": {"httpsToken": "ghp_test"}}
    secrets_file.write_text(yaml.safe_dump(document))

    values = secret_values(decrypt_secrets_file(settings.secrets_file), settings, env)

    assert resolved(values.proxmox_api_token) == (PROXMOX_TOKEN, True)
    assert resolved(values.cluster_secrets) == (CLUSTER_SECRETS, True)
    assert values.git_https_token is not None
    assert resolved(values.git_https_token) == ("ghp_test", True)
    assert resolved(values.age_key) == (age_key.read_text(), True)


@pytest.mark.skipif(
    not (shutil.which("sops") and shutil.which("age-keygen")),
    reason="needs the real sops and age binaries (mise install provides both)",
)
def test_real_sops_and_age_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "age-key.txt"
    subprocess.run(["age-keygen", "-o", str(key_file)], check=True, capture_output=True)
    public_key = next(
        line.split(": ", 1)[1]
        for line in key_file.read_text().splitlines()
        if line.startswith("# public key: ")
    )
    plain = tmp_path / "secrets.yaml"
    plain.write_text(yaml.safe_dump(secrets_document()))
    encrypted = tmp_path / "secrets.enc.yaml"
    result = subprocess.run(
        ["sops", "--encrypt", "--age", public_key, str(plain)],
        check=True,
        capture_output=True,
        text=True,
    )
    encrypted.write_text(result.stdout)
    assert PROXMOX_TOKEN not in encrypted.read_text()

    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key_file))
    assert decrypt_secrets_file(encrypted) == secrets_document()

    other_key = tmp_path / "other-key.txt"
    subprocess.run(["age-keygen", "-o", str(other_key)], check=True, capture_output=True)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(other_key))
    with pytest.raises(Exception, match="sops could not decrypt it"):
        decrypt_secrets_file(encrypted)


def test_the_age_key_may_come_from_sops_age_key_as_in_ci(tmp_path: Path) -> None:
    missing_file = tmp_path / "absent.txt"
    key = "AGE-SECRET-KEY-1CIONLYTESTKEY"
    assert read_age_key(missing_file, {"SOPS_AGE_KEY": key}) == key + "\n"
    with pytest.raises(ConfigError, match="SOPS_AGE_KEY = '<redacted>'"):
        read_age_key(missing_file, {"SOPS_AGE_KEY": "not a key"})
    with pytest.raises(ConfigError, match="names no file"):
        read_age_key(missing_file, {})
