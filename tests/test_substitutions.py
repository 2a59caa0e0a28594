"""Item 16/17 of issue 8: every `${VAR}` of kubernetes/ has a safe value before anything is
registered; placeholders and values Flux cannot paste into YAML verbatim are refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gitops.substitutions import required_variables
from harness.engine import Program
from harness.environment import CLUSTER_SECRETS, committed_config, secrets_document

WriteSecrets = Callable[[dict[str, Any]], None]


def _with_cluster_secrets(cluster_secrets: dict[str, Any]) -> dict[str, Any]:
    document = secrets_document()
    document["clusterSecrets"] = cluster_secrets
    return document


def test_the_committed_tree_needs_exactly_the_documented_variables() -> None:
    assert sorted(required_variables()) == [
        "ACME_EMAIL",
        "BACKUP_AGE_RECIPIENT",
        "BACKUP_MAX_AGE_SECONDS",
        "BACKUP_RETENTION_DAYS",
        "BACKUP_SCHEDULE",
        "CLUSTER_DOMAIN",
        "CLUSTER_NAME",
        "DIGITALOCEAN_TOKEN",
        "GRAFANA_ADMIN_PASSWORD",
        "NFS_PATH",
        "NFS_SERVER",
        "PUSHOVER_API_TOKEN",
        "PUSHOVER_USER_KEY",
        "TIMEZONE",
    ]


def test_a_missing_secret_variable_stops_before_any_resource(
    program: Program, secrets_file: Path, write_secrets: WriteSecrets
) -> None:
    secrets = {k: v for k, v in CLUSTER_SECRETS.items() if k != "GRAFANA_ADMIN_PASSWORD"}
    write_secrets(_with_cluster_secrets(secrets))
    run = program(committed_config(), expect_error=True)
    message = str(run.error)
    assert f"{secrets_file}:clusterSecrets.GRAFANA_ADMIN_PASSWORD" in message
    assert "kubernetes/infrastructure/monitoring/secret.yaml" in message
    assert run.registrations == []


def test_a_missing_setting_is_named_as_written_in_yaml(program: Program) -> None:
    config = committed_config()
    del config["clusterSettings"]["TIMEZONE"]
    run = program(config, expect_error=True)
    assert "homelab:clusterSettings.TIMEZONE" in str(run.error)
    assert run.registrations == []


def test_the_examples_placeholders_are_refused(
    program: Program, secrets_file: Path, write_secrets: WriteSecrets
) -> None:
    write_secrets(_with_cluster_secrets({**CLUSTER_SECRETS, "PUSHOVER_USER_KEY": "replace-me"}))
    run = program(committed_config(), expect_error=True)
    assert f"{secrets_file}:clusterSecrets.PUSHOVER_USER_KEY" in str(run.error)
    assert "placeholder" in str(run.error)
    assert run.registrations == []


def test_the_all_zero_proxmox_token_is_refused(
    program: Program, secrets_file: Path, write_secrets: WriteSecrets
) -> None:
    document = secrets_document()
    document["proxmox"]["apiToken"] = "pulumi@pve!homelab=00000000-0000-0000-0000-000000000000"
    write_secrets(document)
    run = program(committed_config(), expect_error=True)
    assert f"{secrets_file}:proxmox.apiToken" in str(run.error)
    assert "00000000-0000" not in str(run.error)
    assert run.registrations == []


@pytest.mark.parametrize("bad", ['pass"word', "back\\slash", "two\nlines"])
def test_a_secret_flux_cannot_substitute_verbatim_is_refused_without_showing_it(
    program: Program, secrets_file: Path, write_secrets: WriteSecrets, bad: str
) -> None:
    write_secrets(_with_cluster_secrets({**CLUSTER_SECRETS, "GRAFANA_ADMIN_PASSWORD": bad}))
    run = program(committed_config(), expect_error=True)
    message = str(run.error)
    assert f"{secrets_file}:clusterSecrets.GRAFANA_ADMIN_PASSWORD" in message
    assert bad not in message and "<redacted>" in message
    assert run.registrations == []


def test_an_unsafe_setting_is_refused(program: Program) -> None:
    config = committed_config()
    config["clusterSettings"]["TIMEZONE"] = 'Etc/"UTC"'
    run = program(config, expect_error=True)
    assert "homelab:clusterSettings.TIMEZONE" in str(run.error)
    assert "double quote" in str(run.error)


def test_escaped_and_defaulted_references_are_not_required(tmp_path: Path) -> None:
    root = tmp_path / "kubernetes"
    root.mkdir()
    (root / "a.yaml").write_text(
        "a: $${ESCAPED}\nb: ${WITH_DEFAULT:=x}\nc: ${quote}${NEEDED}${quote}\nd: $$${ALSO}\n"
    )
    assert sorted(required_variables(root)) == ["ALSO", "NEEDED"]
