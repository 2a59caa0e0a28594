"""A repository-like directory with the real `sops` and a pyrage-generated age key, for the
tests that must see real encryption (escrow, restore)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyrage import x25519  # pyright: ignore[reportAttributeAccessIssue]  # compiled, no stubs

from harness.engine import PROJECT_ROOT, ProgramRun, run_program
from harness.environment import committed_config, secrets_document

SOPS = PROJECT_ROOT / ".venv" / "bin" / "sops"


@pytest.fixture(name="workdir")
def workdir_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository-like directory: .sops.yaml to a fresh age key, the real sops on PATH, the
    secrets file encrypted for real."""
    identity = x25519.Identity.generate()
    key_file = tmp_path / "age-key.txt"
    key_file.write_text(f"{identity}\n")
    (tmp_path / ".sops.yaml").write_text(
        yaml.safe_dump(
            {"creation_rules": [{"path_regex": r"\.enc\.yaml$", "age": str(identity.to_public())}]}
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOPS_AGE_KEY", raising=False)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key_file))
    monkeypatch.setenv("PATH", f"{SOPS.parent}{os.pathsep}{os.environ['PATH']}")
    encrypt(tmp_path / "secrets.enc.yaml", secrets_document())
    return tmp_path


def encrypt(target: Path, document: dict[str, Any]) -> None:
    subprocess.run(
        [str(SOPS), "encrypt", "--filename-override", target.name, "--output", str(target)],
        input=yaml.safe_dump(document),
        text=True,
        check=True,
        cwd=target.parent,
    )


def decrypt(path: Path) -> Any:
    result = subprocess.run(
        [str(SOPS), "decrypt", "--output-type", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def run(workdir: Path, backup: dict[str, Any] | None = None, **kwargs: Any) -> ProgramRun:
    config = {**committed_config(), "secretsFile": str(workdir / "secrets.enc.yaml")}
    config["backup"] = {**config.get("backup", {}), **(backup or {})}
    return run_program(config, **kwargs)
