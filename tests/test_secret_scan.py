"""The secret scan of .ci/run passes a repository that follows the README: a committed .sops.yaml
with a real age recipient and real sops-encrypted files — and still catches plain text."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from harness.engine import PROJECT_ROOT
from harness.environment import SOPS, new_age_key, secrets_document, sops_config, sops_encrypt

SCAN = PROJECT_ROOT / "scripts" / "secret-scan.sh"


def scan(repository: Path) -> subprocess.CompletedProcess[str]:
    """The scan .ci/run runs (`uv run scripts/secret-scan.sh`), on the files git tracks there."""
    subprocess.run(["git", "add", "--all"], cwd=repository, check=True)
    return subprocess.run(
        ["bash", str(SCAN)],
        cwd=repository,
        env={**os.environ, "PATH": f"{SOPS.parent}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=False,
    )


def repository_as_the_readme_leaves_it(directory: Path) -> Path:
    """A git repository with the project's baseline, .sops.yaml holding the user's recipient and
    the secrets file plus a Kubernetes Secret encrypted by the real sops."""
    subprocess.run(["git", "init", "--quiet", str(directory)], check=True)
    shutil.copy(PROJECT_ROOT / ".secrets.baseline", directory)
    recipient = new_age_key().recipient
    (directory / ".sops.yaml").write_text(sops_config(recipient))
    (directory / "secrets.enc.yaml").write_text(sops_encrypt(secrets_document(), recipient))
    secret = directory / "kubernetes" / "apps" / "demo" / "secret.enc.yaml"
    secret.parent.mkdir(parents=True)
    secret.write_text(
        sops_encrypt(
            {"apiVersion": "v1", "kind": "Secret", "stringData": {"token": "s3cr3t"}}, recipient
        )
    )
    return directory


def test_sops_files_with_real_ciphertext_pass_the_secret_scan(tmp_path: Path) -> None:
    repository = repository_as_the_readme_leaves_it(tmp_path)
    result = scan(repository)
    assert result.returncode == 0, result.stdout + result.stderr


def test_plain_text_under_an_encrypted_name_is_still_scanned(tmp_path: Path) -> None:
    repository = repository_as_the_readme_leaves_it(tmp_path)
    # A decrypted copy saved over the encrypted file: sops reports it as not encrypted.
    (repository / "secrets.enc.yaml").write_text(yaml.safe_dump(secrets_document()))
    result = scan(repository)
    assert result.returncode != 0
    assert "secrets.enc.yaml" in result.stdout
