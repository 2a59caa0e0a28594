"""Fixtures: a stub `sops` on PATH, a secrets file, an age key, program runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.engine import ProgramRun, run_program
from harness.environment import ProgramEnvironment, write_program_environment


@pytest.fixture
def environment(tmp_path: Path) -> ProgramEnvironment:
    return write_program_environment(tmp_path)


@pytest.fixture
def stub_sops(environment: ProgramEnvironment, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PATH", environment.path())
    # Relative paths (the escrow files) resolve in the test's directory, never in a working copy
    # that holds a real cluster's talos-secrets.enc.yaml.
    monkeypatch.chdir(environment.secrets_file.parent)
    return environment.sops


@pytest.fixture
def secrets_file(environment: ProgramEnvironment) -> Path:
    return environment.secrets_file


@pytest.fixture
def age_key(environment: ProgramEnvironment, monkeypatch: pytest.MonkeyPatch) -> Path:
    # A key in the caller's environment (a shell, CI) would win over the test's key file.
    monkeypatch.delenv("SOPS_AGE_KEY", raising=False)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(environment.age_key))
    return environment.age_key


@pytest.fixture
def program(
    stub_sops: Path, secrets_file: Path, age_key: Path
) -> Iterator[Callable[..., ProgramRun]]:
    """Run the program with a config (its secretsFile pointed at the test's secrets file)."""

    def run(config: dict[str, Any], expect_error: bool = False) -> ProgramRun:
        return run_program({**config, "secretsFile": str(secrets_file)}, expect_error=expect_error)

    yield run
