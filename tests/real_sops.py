"""A repository-like test directory (conftest's real sops and age key, the committed .sops.yaml
rules) for the tests that read and write escrow files (escrow, restore)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.engine import PROJECT_ROOT, ProgramRun, run_program
from harness.environment import ProgramEnvironment, committed_config, sops_config

SOPS = PROJECT_ROOT / ".venv" / "bin" / "sops"


@pytest.fixture(name="workdir")
def workdir_fixture(environment: ProgramEnvironment, sops: Path, age_key: Path) -> Path:
    """The test's directory (the `sops` fixture runs the program there) made repository-like:
    the committed .sops.yaml rules, to the test's age key, so escrow writes encrypt for real."""
    directory = environment.secrets_file.parent
    (directory / ".sops.yaml").write_text(sops_config(environment.recipient))
    return directory


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
