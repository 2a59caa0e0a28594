"""Stand-in executables for the tests that run shell text (mise tasks, step scripts): written
into a directory put first on PATH, so the script finds them before the real tools."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def stub_path(bin_dir: Path, scripts: Mapping[str, str], base: str) -> str:
    """Write each `name: text` in `scripts` as an executable file in `bin_dir`; returns the PATH
    that searches `bin_dir` before `base`."""
    bin_dir.mkdir(exist_ok=True)
    for name, text in scripts.items():
        stub = bin_dir / name
        stub.write_text(text)
        stub.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{base}"
