"""`mise run setup` on a second machine: the state passphrase must match the stack file's salt."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.mise import task_script
from tests.stubs import stub_path


def _run_setup(directory: Path, stack_file: str) -> subprocess.CompletedProcess[str]:
    """The task's script under bash, with the tools it calls stood in by no-ops (mise, uv,
    lefthook and pulumi are not what is under test)."""
    no_ops = {tool: "#!/bin/sh\nexit 0\n" for tool in ("mise", "uv", "lefthook", "pulumi")}
    path = stub_path(directory / "bin", no_ops, os.environ["PATH"])
    (directory / "Pulumi.homelab.yaml").write_text(stack_file)
    env = {
        "PATH": path,
        "PULUMI_BACKEND_URL": f"file://{directory}/state",
        "PULUMI_CONFIG_PASSPHRASE_FILE": str(directory / ".pulumi-passphrase"),
        "SOPS_AGE_KEY_FILE": str(directory / ".age-key.txt"),
        "HOME": str(directory),
    }
    return subprocess.run(
        ["bash", "-c", task_script("setup")],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_new_machine_makes_a_passphrase_for_a_new_stack(tmp_path: Path) -> None:
    result = _run_setup(tmp_path, "config: {}\n")
    assert result.returncode == 0, result.stderr
    passphrase = tmp_path / ".pulumi-passphrase"
    assert passphrase.read_text() and stat.S_IMODE(passphrase.stat().st_mode) == 0o600


def test_no_new_passphrase_against_an_existing_salt(tmp_path: Path) -> None:
    """Pulumi would refuse a new passphrase against the old salt ("incorrect passphrase"):
    setup stops and says to restore the passphrase or drop the salt (README, Backup and restore)."""
    result = _run_setup(tmp_path, "encryptionsalt: v1:abc:def\nconfig: {}\n")
    assert result.returncode == 1
    assert "restore your .pulumi-passphrase" in result.stderr
    assert not (tmp_path / ".pulumi-passphrase").exists()
