"""The repository's .mise.toml as the tests read it: its tools, env and tasks."""

from __future__ import annotations

import functools
import tomllib
from typing import Any

from harness.engine import PROJECT_ROOT


@functools.cache
def mise() -> dict[str, Any]:
    """.mise.toml parsed once (tomllib); callers read it, never change it."""
    return tomllib.loads((PROJECT_ROOT / ".mise.toml").read_text())


def task_script(name: str) -> str:
    """The `run` text of task `name`, which the tests hand to bash as mise would."""
    run = mise()["tasks"][name]["run"]
    assert isinstance(run, str), f"task {name} is not one script"
    # Run strings are Tera templates: the ones run here carry no template syntax.
    assert "{{" not in run and "{%" not in run, name
    return run
