"""Scheduled, encrypted, off-cluster etcd snapshots: Talos API access, settings, manifests."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from cluster.patches import node_patches
from harness.engine import Program
from harness.environment import committed_config, ha_config
from harness.tokens import APPLY, CONFIGMAP
from settings import ConfigError, parse_settings
from settings.backup import BACKUP_NAMESPACE, BACKUP_SETTING_KEYS, ETCD_BACKUP_ROLE
from tests.manifests.detectors import variable_refs
from tests.manifests.tree import build
from tests.talos_schemas import TALOS_MINORS, schema_errors

INSTALLER = "factory.talos.dev/metal-installer-secureboot/abc:v1.12.4"
LAYER = "infrastructure-config"


def _access(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        doc["machine"]["features"]["kubernetesTalosAPIAccess"]
        for doc in documents
        if "features" in doc.get("machine", {})
    ]


# --- Talos API access -------------------------------------------------------------------------


def test_control_planes_let_the_backup_namespace_take_etcd_snapshots_and_workers_do_not() -> None:
    settings = parse_settings(ha_config(), {})
    for node in settings.nodes:
        access = _access(node_patches(settings, node, INSTALLER))
        if node.is_controlplane:
            assert access == [
                {
                    "enabled": True,
                    "allowedRoles": [ETCD_BACKUP_ROLE],
                    "allowedKubernetesNamespaces": [BACKUP_NAMESPACE],
                }
            ], node.name
        else:
            # Talos refuses the whole config of a worker that enables the feature.
            assert access == [], node.name


@pytest.mark.parametrize("minor", TALOS_MINORS)
def test_the_schema_knows_the_feature_and_rejects_unknown_roles(minor: str) -> None:
    settings = parse_settings(committed_config(), {})
    (patch,) = [d for d in node_patches(settings, settings.nodes[0], INSTALLER) if _access([d])]
    assert schema_errors(minor, patch) == []
    wrong = copy.deepcopy(patch)
    wrong["machine"]["features"]["kubernetesTalosAPIAccess"]["allowedRoles"] = ["os:etcd:bakup"]
    assert schema_errors(minor, wrong)
    typo = copy.deepcopy(patch)
    typo["machine"]["features"]["kubernetesTalosAPIAccess"]["allowedNamespaces"] = ["x"]
    assert schema_errors(minor, typo)


def test_the_registered_control_plane_config_carries_the_access(program: Program) -> None:
    run = program(committed_config())
    # The install apply (its staged twin in cluster/rollout.py carries the same patches).
    (apply,) = [a for a in run.of_type(APPLY) if a.name.endswith("-config")]
    documents = [yaml.safe_load(text) for text in apply.inputs["configPatches"]]
    assert _access(documents)[0]["allowedKubernetesNamespaces"] == [BACKUP_NAMESPACE]


# --- Settings ---------------------------------------------------------------------------------


def test_defaults_are_every_six_hours_kept_fourteen_days() -> None:
    config = committed_config()
    config.pop("backup", None)
    flux = parse_settings(config, {}).flux_settings
    assert flux["BACKUP_SCHEDULE"] == "0 */6 * * *"
    assert flux["BACKUP_RETENTION_DAYS"] == "14"
    assert flux["BACKUP_MAX_AGE_SECONDS"] == str(2 * 6 * 3600)


def test_schedule_retention_and_alert_threshold_follow_the_settings() -> None:
    config = committed_config()
    config["backup"] = {"intervalHours": 24, "retentionDays": 30}
    flux = parse_settings(config, {}).flux_settings
    assert flux["BACKUP_SCHEDULE"] == "0 0 * * *"
    assert flux["BACKUP_RETENTION_DAYS"] == "30"
    assert flux["BACKUP_MAX_AGE_SECONDS"] == str(48 * 3600)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"backup": {"intervalHours": 5}}, "homelab:backup.intervalHours"),
        ({"backup": {"intervalHours": "6"}}, "homelab:backup.intervalHours"),
        ({"backup": {"retentionDays": 0}}, "homelab:backup.retentionDays"),
        ({"backup": {"keep": 3}}, "homelab:backup.keep"),
    ],
)
def test_bad_backup_settings_name_their_key(change: dict[str, Any], key: str) -> None:
    config = {**committed_config(), **change}
    with pytest.raises(ConfigError) as error:
        parse_settings(config, {})
    assert str(error.value).startswith(key), str(error.value)


@pytest.mark.parametrize("value", [None, "AGE-SECRET-KEY-1ABC", "age1short"])
def test_the_snapshot_recipient_must_be_an_age_public_key(value: str | None) -> None:
    config = committed_config()
    if value is None:
        del config["clusterSettings"]["BACKUP_AGE_RECIPIENT"]
    else:
        config["clusterSettings"]["BACKUP_AGE_RECIPIENT"] = value
    with pytest.raises(ConfigError) as error:
        parse_settings(config, {})
    assert str(error.value).startswith("homelab:clusterSettings.BACKUP_AGE_RECIPIENT")
    # A private key pasted by mistake is not echoed into the log.
    assert "1ABC" not in str(error.value)


def test_derived_backup_settings_cannot_be_overridden() -> None:
    config = committed_config()
    config["clusterSettings"]["BACKUP_SCHEDULE"] = "* * * * *"
    with pytest.raises(ConfigError, match=r"clusterSettings\.BACKUP_SCHEDULE"):
        parse_settings(config, {})


def test_the_cluster_settings_configmap_carries_the_backup_values(program: Program) -> None:
    run = program(committed_config())
    data = run.one(CONFIGMAP, "cluster-settings").inputs["data"]
    for key in (*BACKUP_SETTING_KEYS, "BACKUP_AGE_RECIPIENT", "NFS_SERVER", "NFS_PATH"):
        assert data.get(key), key


# --- Manifests --------------------------------------------------------------------------------


def _objects() -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (obj["kind"], obj["metadata"]["name"]): obj
        for obj in build(LAYER)
        if obj["metadata"].get("namespace", obj["metadata"]["name"]) == BACKUP_NAMESPACE
    }


def _pod(cronjob: dict[str, Any]) -> dict[str, Any]:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def test_the_backup_lives_in_the_namespace_talos_allows() -> None:
    objects = _objects()
    assert set(objects) == {
        ("Namespace", BACKUP_NAMESPACE),
        ("ServiceAccount", "etcd-backup"),
        ("CronJob", "etcd-snapshot"),
        ("PrometheusRule", "etcd-backup"),
    }
    account = objects[("ServiceAccount", "etcd-backup")]
    assert account["apiVersion"] == "talos.dev/v1alpha1"
    assert account["spec"] == {"roles": [ETCD_BACKUP_ROLE]}


def test_the_job_snapshots_with_the_talos_service_account_secret() -> None:
    pod = _pod(_objects()[("CronJob", "etcd-snapshot")])
    (snapshot,) = pod["initContainers"]
    assert snapshot["image"].startswith("ghcr.io/siderolabs/talosctl:v")
    assert snapshot["args"][:2] == ["etcd", "snapshot"]
    mounts = {m["name"]: m["mountPath"] for m in snapshot["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # Talos' secret carries the name of its ServiceAccount; talosctl reads it at this path.
    assert mounts["talos-secrets"] == "/var/run/secrets/talos.dev"
    assert (
        volumes["talos-secrets"]["secret"]["secretName"]
        == "etcd-backup"  # pragma: allowlist secret
    )
    assert pod["automountServiceAccountToken"] is False


def test_each_snapshot_is_encrypted_to_the_recipient_and_pruned_on_the_nas() -> None:
    cronjob = _objects()[("CronJob", "etcd-snapshot")]
    pod = _pod(cronjob)
    (store,) = pod["containers"]
    env = {e["name"]: e["value"] for e in store["env"]}
    assert env["AGE_RECIPIENT"] == "${quote}${BACKUP_AGE_RECIPIENT}${quote}"
    assert env["RETENTION_DAYS"] == "${quote}${BACKUP_RETENTION_DAYS}${quote}"
    script = store["args"][0]
    assert 'sops encrypt --age "$AGE_RECIPIENT"' in script
    assert "RETENTION_DAYS * 1440" in script and "rm -f" in script
    # The shell script must not contain anything Flux would substitute.
    assert variable_refs(script) == []
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["backups"]["nfs"] == {
        "server": "${quote}${NFS_SERVER}${quote}",
        "path": "${quote}${NFS_PATH}${quote}",
    }
    assert cronjob["spec"]["schedule"] == "${quote}${BACKUP_SCHEDULE}${quote}"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"


def test_an_alert_fires_when_the_newest_snapshot_is_older_than_twice_the_schedule() -> None:
    rule = _objects()[("PrometheusRule", "etcd-backup")]
    (alert,) = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert "kube_cronjob_status_last_successful_time" in alert["expr"]
    assert 'cronjob="etcd-snapshot"' in alert["expr"]
    assert "> ${BACKUP_MAX_AGE_SECONDS}" in alert["expr"]
    # A job that never succeeded has no last-success time: its creation time stands in.
    assert "kube_cronjob_created" in alert["expr"]
