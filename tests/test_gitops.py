"""The GitOps half as registered: Flux install, Git source, substitutions and the layer graph."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from gitops.layers import LAYERS, Layer, check_layers, worst_case_seconds
from harness.engine import PROJECT_ROOT, Program, ProgramRun, plain_strings
from harness.environment import CLUSTER_SECRETS, committed_config, secrets_document
from harness.tokens import (
    COMMAND,
    CONFIGMAP,
    DEPLOY_KEY,
    FLUX,
    GIT_REPOSITORY,
    K8S_PROVIDER,
    KUSTOMIZATION,
    SECRET,
)


@pytest.fixture
def run(program: Program) -> ProgramRun:
    return program(committed_config())


def test_flux_is_installed_from_the_pinned_release_before_any_flux_object(run: ProgramRun) -> None:
    (flux,) = run.of_type(FLUX)
    assert flux.inputs["file"] == (
        "https://github.com/fluxcd/flux2/releases/download/v2.7.5/install.yaml"
    )
    flux_objects = run.of_type(GIT_REPOSITORY) + run.of_type(KUSTOMIZATION)
    in_flux_namespace = run.of_type(SECRET) + run.of_type(CONFIGMAP)
    assert len(flux_objects) == 1 + len(LAYERS)
    for registration in flux_objects + in_flux_namespace:
        assert run.waits_for(registration, flux), registration.name


def test_the_kubernetes_provider_uses_the_healthy_clusters_kubeconfig(run: ProgramRun) -> None:
    (provider,) = run.of_type(K8S_PROVIDER)
    assert provider.inputs["kubeconfig"] == run.outputs["kubeconfig"]
    assert provider.inputs["kubeconfig"] not in list(plain_strings(provider.raw_inputs))
    health = run.one(COMMAND, "cluster-health")
    assert run.waits_for(provider, health)
    for registration in run.registrations:
        if registration.type.startswith("kubernetes:"):
            assert registration.provider.startswith(provider.urn), registration.name


def test_layer_hierarchy_exactly_as_designed(run: ProgramRun) -> None:
    depends_on = {
        k.inputs["metadata"]["name"]: [d["name"] for d in k.inputs["spec"].get("dependsOn", [])]
        for k in run.of_type(KUSTOMIZATION)
    }
    assert depends_on == {
        "crds": [],
        "infrastructure": ["crds"],
        "infrastructure-config": ["infrastructure"],
        "cluster-policies": ["infrastructure"],
        "apps": ["infrastructure-config"],
    }


def test_every_layer_reconciles_the_same_way(run: ProgramRun) -> None:
    for kustomization in run.of_type(KUSTOMIZATION):
        name = kustomization.inputs["metadata"]["name"]
        spec = kustomization.inputs["spec"]
        assert kustomization.inputs["metadata"]["namespace"] == "flux-system"
        assert spec["path"] == f"./kubernetes/{name}"
        layer = next(layer for layer in LAYERS if layer.name == name)
        assert (spec["interval"], spec["retryInterval"]) == ("10m", "2m")
        assert spec["timeout"] == f"{layer.timeout_minutes}m"
        assert spec["prune"] is True and spec["wait"] is True
        assert spec["sourceRef"] == {"kind": "GitRepository", "name": "flux-system"}
        assert spec["decryption"] == {"provider": "sops", "secretRef": {"name": "sops-age"}}
        assert spec["postBuild"]["substitute"] == {"quote": '"'}
        assert spec["postBuild"]["substituteFrom"] == [
            {"kind": "ConfigMap", "name": "cluster-settings"},
            {"kind": "Secret", "name": "cluster-secrets"},
        ]
        annotations = kustomization.inputs["metadata"]["annotations"]
        assert annotations["pulumi.com/waitFor"] == "condition=Ready"
        # Pulumi waits from creation, for all layers at once: each wait covers the layers before.
        assert int(annotations["pulumi.com/timeoutSeconds"]) > worst_case_seconds(layer)


def test_layer_objects_wait_for_their_inputs_but_not_for_each_other(run: ProgramRun) -> None:
    inputs = run.of_type(SECRET) + run.of_type(CONFIGMAP)
    kustomizations = run.of_type(KUSTOMIZATION)
    for kustomization in kustomizations:
        assert all(run.waits_for(kustomization, needed) for needed in inputs)
        assert not any(run.waits_for(kustomization, other) for other in kustomizations)


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.name)
def test_every_layer_path_exists_with_a_kustomization(layer: Layer) -> None:
    directory = PROJECT_ROOT / layer.path
    assert (directory / "kustomization.yaml").is_file(), directory


def test_layer_graph_check_rejects_cycles_and_unknown_layers() -> None:
    check_layers(LAYERS)
    with pytest.raises(ValueError, match="cycle: a -> b -> a"):
        check_layers((Layer("a", ("b",), 5, ""), Layer("b", ("a",), 5, "")))
    with pytest.raises(ValueError, match="unknown"):
        check_layers((Layer("a", ("missing",), 5, ""),))


def test_git_source_over_ssh_with_a_generated_deploy_key(run: ProgramRun) -> None:
    (repository,) = run.of_type(GIT_REPOSITORY)
    spec = repository.inputs["spec"]
    assert spec["url"] == "ssh://git@github.com/example/homelab.git"
    assert spec["ref"] == {"branch": "main"}
    assert spec["secretRef"] == {"name": "flux-system"}
    (key,) = run.of_type(DEPLOY_KEY)
    assert key.inputs["algorithm"] == "ED25519"
    auth = run.one(SECRET, "flux-system")
    private_key = key.state["privateKeyOpenssh"]
    assert auth.inputs["stringData"]["identity"] == private_key
    assert auth.inputs["stringData"]["known_hosts"].startswith("github.com ssh-ed25519 ")
    assert private_key not in list(plain_strings(auth.raw_inputs))
    assert run.outputs["deployKeyPublic"] == key.state["publicKeyOpenssh"]


def test_git_source_over_https_with_the_token_from_the_secrets_file(
    program: Program, write_secrets: Callable[[Mapping[str, Any]], None]
) -> None:
    write_secrets({**secrets_document(), "git": {"httpsToken": "ghp_testtoken"}})
    config = committed_config()
    config["gitops"]["repository"] = "https://github.com/example/homelab.git"
    run = program(config)
    assert run.of_type(DEPLOY_KEY) == []
    assert "deployKeyPublic" not in run.outputs
    auth = run.one(SECRET, "flux-system")
    assert auth.inputs["stringData"] == {"username": "git", "password": "ghp_testtoken"}
    assert "ghp_testtoken" not in list(plain_strings(auth.raw_inputs))


def test_the_age_key_reaches_flux_as_a_secret(run: ProgramRun, age_key: Path) -> None:
    sops_age = run.one(SECRET, "sops-age")
    assert sops_age.inputs["metadata"] == {"name": "sops-age", "namespace": "flux-system"}
    assert sops_age.inputs["stringData"] == {"age.agekey": age_key.read_text()}
    assert not any("AGE-SECRET-KEY" in s for s in plain_strings(sops_age.raw_inputs))


def test_cluster_secrets_come_from_the_secrets_file_as_a_secret(run: ProgramRun) -> None:
    cluster_secrets = run.one(SECRET, "cluster-secrets")
    assert cluster_secrets.inputs["stringData"] == CLUSTER_SECRETS
    plain = list(plain_strings(cluster_secrets.raw_inputs))
    assert not any(value in plain for value in CLUSTER_SECRETS.values())


def test_cluster_settings_carry_the_configured_and_derived_values(run: ProgramRun) -> None:
    settings = run.one(CONFIGMAP, "cluster-settings")
    assert settings.inputs["data"] == {
        "ACME_EMAIL": "admin@example.com",
        "API_ADDRESS": "192.168.20.100",
        "BACKUP_AGE_RECIPIENT": committed_config()["clusterSettings"]["BACKUP_AGE_RECIPIENT"],
        "BACKUP_MAX_AGE_SECONDS": "43200",
        "BACKUP_RETENTION_DAYS": "14",
        "BACKUP_SCHEDULE": "0 */6 * * *",
        "CLUSTER_DOMAIN": "example.com",
        "CLUSTER_NAME": "homelab",
        "NFS_PATH": "/volume1/kubernetes",
        "NFS_SERVER": "192.168.20.20",
        "NODE_CIDR": "192.168.20.0/24",
        "TIMEZONE": "Etc/UTC",
    }


def test_a_missing_age_key_fails_before_any_resource(program: Program, age_key: Path) -> None:
    age_key.unlink()
    run = program(committed_config(), expect_error=True)
    message = str(run.error)
    assert "SOPS_AGE_KEY_FILE" in message and "age-keygen" in message
    assert run.registrations == []
