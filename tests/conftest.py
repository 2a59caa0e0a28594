"""Fixtures: the real `sops` on PATH, an age key, a secrets file encrypted to it, program runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.engine import ProgramRun, run_program
from harness.environment import ProgramEnvironment, write_program_environment


@pytest.fixture
def environment(tmp_path: Path) -> ProgramEnvironment:
    return write_program_environment(tmp_path)


@pytest.fixture
def sops(environment: ProgramEnvironment, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PATH", environment.path())
    return environment.sops


@pytest.fixture
def write_secrets(environment: ProgramEnvironment) -> Callable[[Mapping[str, Any]], None]:
    """Replace the secrets file with a document, encrypted by the real sops to the test's key."""
    return environment.write_secrets


@pytest.fixture
def secrets_file(environment: ProgramEnvironment) -> Path:
    return environment.secrets_file


@pytest.fixture
def age_key(environment: ProgramEnvironment, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The program hands Flux SOPS_AGE_KEY before the key file (read_age_key): keep the caller's out.
    monkeypatch.delenv("SOPS_AGE_KEY", raising=False)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(environment.age_key))
    # Nor may sops find the caller's own default key file (~/.config/sops/age/keys.txt).
    monkeypatch.setenv("XDG_CONFIG_HOME", str(environment.age_key.parent / "no-config"))
    return environment.age_key


@pytest.fixture
def program(sops: Path, secrets_file: Path, age_key: Path) -> Iterator[Callable[..., ProgramRun]]:
    """Run the program with a config (its secretsFile pointed at the test's secrets file)."""

    def run(config: dict[str, Any], expect_error: bool = False) -> ProgramRun:
        return run_program({**config, "secretsFile": str(secrets_file)}, expect_error=expect_error)

    yield run
