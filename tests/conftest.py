"""Fixtures: the real `sops` on PATH, an age key, a secrets file encrypted to it, program
runs.

Every run's config reaches the program as the Pulumi CLI passes it (harness/cliconfig.py):
`program` takes config values as the CLI's YAML reader types them, `stack_file` a stack file's
text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.cliconfig import load_stack_file
from harness.engine import PROJECT, Program, ProgramRun, run_program
from harness.environment import ProgramEnvironment, sops_config, write_program_environment


@pytest.fixture
def environment(tmp_path: Path) -> ProgramEnvironment:
    return write_program_environment(tmp_path)


@pytest.fixture
def sops(environment: ProgramEnvironment, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PATH", environment.path())
    # Relative paths (the escrow files) resolve in the test's directory, never in a working copy
    # that holds a real cluster's talos-secrets.enc.yaml.
    monkeypatch.chdir(environment.secrets_file.parent)
    return environment.sops


@pytest.fixture
def workdir(environment: ProgramEnvironment, sops: Path, age_key: Path) -> Path:
    """The test's directory (the `sops` fixture runs the program there) made repository-like:
    the committed .sops.yaml rules, to the test's age key, so escrow writes encrypt for real."""
    directory = environment.secrets_file.parent
    (directory / ".sops.yaml").write_text(sops_config(environment.recipient))
    return directory


@pytest.fixture
def write_secrets(environment: ProgramEnvironment) -> Callable[[Mapping[str, Any]], None]:
    """Replace the secrets file with a document, encrypted by the real sops to the test's key."""
    return environment.write_secrets


@pytest.fixture
def secrets_file(environment: ProgramEnvironment) -> Path:
    return environment.secrets_file


@pytest.fixture
def age_key(environment: ProgramEnvironment, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in environment.key_variables().items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return environment.age_key


@pytest.fixture
def program(sops: Path, secrets_file: Path, age_key: Path) -> Iterator[Program]:
    """Run the program with a config (its secretsFile pointed at the test's secrets file)."""

    def run(
        config: dict[str, Any], preview: bool = False, expect_error: bool = False
    ) -> ProgramRun:
        config = {**config, "secretsFile": str(secrets_file)}
        return run_program(config, preview=preview, expect_error=expect_error)

    yield run


@pytest.fixture
def stack_file(
    environment: ProgramEnvironment,
    sops: Path,
    age_key: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Program:
    """Run the program on a Pulumi.<stack>.yaml text, read and passed on as the CLI does.

    It runs where the test's secrets.enc.yaml is, so the committed `homelab:secretsFile`
    (a path relative to the project directory `pulumi up` runs in) needs no change.
    """
    monkeypatch.chdir(environment.secrets_file.parent)

    def run(text: str, preview: bool = False, expect_error: bool = False) -> ProgramRun:
        config = load_stack_file(text, PROJECT)
        return run_program(config, preview=preview, expect_error=expect_error)

    return run
