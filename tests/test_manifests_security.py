"""Security tier: a maintained offline scanner (checkov) over every built layer, and no object on
an API version that the newest Kubernetes the pinned Talos releases accept has removed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest

from tests.manifests.accepted_findings import ACCEPTED
from tests.manifests.tree import (
    LAYERS,
    OPT_IN_DIRS,
    build_text,
    builtin_schema_problems,
)

CHECKOV_VERSION = "3.3.30"
INSTALL = f"uv tool install checkov=={CHECKOV_VERSION}"
# Talos 1.13 accepts Kubernetes up to 1.36.x (siderolabs/talos
# pkg/machinery/compatibility/talos113): a cluster may be moved there without touching these files.
NEWEST_KUBERNETES = "1.36.0"
# --skip-download: offline, no policy download from the Prisma Cloud platform.
CHECKOV_OPTIONS = ("--framework", "kubernetes", "--skip-download", "--quiet", "--compact")
CHECKOV_OPTIONS += ("--output", "json")


def _checkov() -> Path:
    """checkov lives in its own tool environment (its pins conflict with this project's pulumi
    dependencies), so it is not a dev dependency: PATH, else uv's tool bin directory."""
    found = shutil.which("checkov") or shutil.which("checkov", path=str(Path.home() / ".local/bin"))
    if found is None:
        pytest.fail(f"checkov is not installed; run `{INSTALL}` (see .ci/run)")
    return Path(found)


def test_checkov_finds_nothing_that_is_not_accepted(tmp_path: Path) -> None:
    for rel in (*LAYERS, *OPT_IN_DIRS):
        (tmp_path / f"{rel.replace('/', '_')}.yaml").write_text(build_text(rel))
    result = subprocess.run(
        [str(_checkov()), "--directory", str(tmp_path), *CHECKOV_OPTIONS],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.stdout.strip(), f"checkov printed nothing:\n{result.stderr}"
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    findings = {
        (check["check_id"], check["resource"]): check["check_name"]
        for report in reports
        for check in report["results"]["failed_checks"]
    }
    new = {key: name for key, name in findings.items() if key not in ACCEPTED}
    assert not new, f"fix these or accept them in tests/manifests/accepted_findings.py: {new}"
    stale = sorted(set(ACCEPTED) - set(findings))
    assert not stale, f"accepted findings checkov no longer reports (remove them): {stale}"


def test_no_api_version_removed_by_the_newest_accepted_kubernetes() -> None:
    """Built-in kinds must validate against Kubernetes 1.36 (a removed API has no schema)."""
    removed = builtin_schema_problems(NEWEST_KUBERNETES)
    assert not removed, "\n".join(removed)


def test_the_removed_api_check_catches_a_removed_api() -> None:
    flow_schema = {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1beta2",
        "kind": "FlowSchema",
        "metadata": {"name": "x"},
        "spec": {"priorityLevelConfiguration": {"name": "x"}},
    }
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(flow_schema, NEWEST_KUBERNETES, strict=True)
