"""Escrow files as the tests that read and write them (escrow, restore) need: encrypted and
decrypted by the real sops, in conftest's repository-like `workdir`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from harness.engine import ProgramRun, run_program
from harness.environment import SOPS, committed_config, session_age_key, sops_encrypt


def encrypt(target: Path, document: dict[str, Any]) -> None:
    """`document` encrypted as `workdir`'s .sops.yaml would: every top-level *.enc.yaml matches
    the same committed rule as secrets.enc.yaml, to the session key's recipient (conftest's
    `environment`), so the cached encryption is the same file."""
    target.write_text(sops_encrypt(document, session_age_key().recipient))


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
