"""Build: every layer builds with kustomize, built-in kinds validate strictly, workloads are
locked down, directories follow the file conventions, YAML lints."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from tests.manifests.detectors import resources_problems
from tests.manifests.tree import (
    CLUSTER_SCOPED_CRD_KINDS,
    K8S_VERSION,
    KUBE,
    LAYERS,
    OPT_IN_DIRS,
    ROOT,
    WORKLOAD_KINDS,
    build,
    builtin_schema_problems,
    dig,
    ident,
    layered_objects,
    source_docs,
    yaml_files,
)

# --------------------------------------------------------------------------------------------
# Builds and built-in kinds
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rel", [*LAYERS, *OPT_IN_DIRS])
def test_kustomize_build(rel: str) -> None:
    objs = build(rel)
    assert objs, f"{rel} builds to nothing"
    keys = [ident(obj) for obj in objs]
    duplicates = {k for k in keys if keys.count(k) > 1}
    assert not duplicates, f"{rel}: duplicate objects {sorted(duplicates)}"
    for obj in objs:
        assert obj.get("apiVersion") and obj.get("kind") and obj.get("metadata", {}).get("name"), (
            obj
        )


def test_builtin_kinds_validate_strictly() -> None:
    """Every object that is not a known custom resource must match the Kubernetes OpenAPI
    schema exactly (strict: no unknown fields; ${VAR} strings in integer fields fail)."""
    failures = builtin_schema_problems(K8S_VERSION)
    assert not failures, "\n".join(failures)


def test_namespaced_objects_name_their_namespace() -> None:
    cluster_scoped = {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "StorageClass",
        *CLUSTER_SCOPED_CRD_KINDS,
    }
    missing = [
        ident(obj)
        for _, obj in layered_objects()
        if obj["kind"] not in cluster_scoped and not obj["metadata"].get("namespace")
    ]
    assert not missing, f"namespaced objects without metadata.namespace: {missing}"


def test_workloads_have_limits_pinned_images_and_security_context() -> None:
    problems = []
    for _, obj in layered_objects():
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        spec = obj["spec"]
        pod = (
            spec
            if obj["kind"] == "Pod"
            else dig(spec, ("template", "spec"))
            or dig(spec, ("jobTemplate", "spec", "template", "spec"))
        )
        pod_sc = pod.get("securityContext") or {}
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            where = f"{ident(obj)} container {container['name']}"
            problems += [
                f"{where}: resources {p}" for p in resources_problems(container.get("resources"))
            ]
            image = container["image"]
            if not (
                "@sha256:" in image
                or (":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"))
            ):
                problems.append(f"{where}: image {image} is not pinned to a tag or digest")
            sc = container.get("securityContext") or {}
            expected = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True}
            problems += [
                f"{where}: securityContext.{k} must be {v}"
                for k, v in expected.items()
                if sc.get(k) is not v
            ]
            if "ALL" not in (dig(sc, ("capabilities", "drop")) or []):
                problems.append(f"{where}: capabilities must drop ALL")
            if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
                problems.append(f"{where}: runAsNonRoot not set")
            if "RuntimeDefault" not in (
                dig(sc, ("seccompProfile", "type")),
                dig(pod_sc, ("seccompProfile", "type")),
            ):
                problems.append(f"{where}: seccompProfile RuntimeDefault not set")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------------
# Conventions
# --------------------------------------------------------------------------------------------


def kustomization_resources(directory: Path) -> list[str]:
    path = directory / "kustomization.yaml"
    assert path.exists(), f"{directory.relative_to(ROOT)} has no kustomization.yaml"
    data = yaml.safe_load(path.read_text())
    assert (data.get("apiVersion"), data.get("kind")) == (
        "kustomize.config.k8s.io/v1beta1",
        "Kustomization",
    ), path
    return list(data.get("resources", []))


def test_layer_directories_list_their_components() -> None:
    problems = []
    for layer in LAYERS:
        directory = KUBE / layer
        listed = set(kustomization_resources(directory))
        present = {p.name for p in directory.iterdir() if p.is_dir()} - {
            Path(d).name for d in OPT_IN_DIRS if d.startswith(layer + "/")
        }
        if listed != present:
            problems.append(
                f"{layer}: kustomization lists {sorted(listed)}, directories are {sorted(present)}"
            )
        if [p.name for p in directory.iterdir() if p.is_file() and p.name != "kustomization.yaml"]:
            problems.append(f"{layer}: only component directories belong in a layer directory")
    assert not problems, "\n".join(problems)


def test_component_directories_follow_the_file_conventions() -> None:
    """One object per file, named after its kind (`<kind>-<name>.yaml` when a kind repeats),
    every file listed in the directory's kustomization.yaml."""
    problems = []
    for directory in sorted({p.parent for p in yaml_files()} - {KUBE / layer for layer in LAYERS}):
        rel = directory.relative_to(KUBE)
        files = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
        listed = set(kustomization_resources(directory))
        if listed != files:
            problems.append(
                f"{rel}: kustomization lists {sorted(listed)}, files are {sorted(files)}"
            )
        kinds = [
            source_docs(directory / f)[0].get("kind", "")
            for f in sorted(files)
            if len(source_docs(directory / f)) == 1
        ]
        for name in sorted(files):
            docs = source_docs(directory / name)
            if len(docs) != 1:
                problems.append(f"{rel}/{name}: {len(docs)} objects; one object per file")
                continue
            kind, obj_name = docs[0]["kind"].lower(), docs[0]["metadata"]["name"]
            expected = (
                {f"{kind}.yaml", f"{kind}-{obj_name}.yaml"}
                if kinds.count(docs[0]["kind"]) == 1
                else {f"{kind}-{obj_name}.yaml"}
            )
            if docs[0]["kind"] == "Kustomization":  # a Flux Kustomization next to kustomize's file
                expected = {f"kustomization-{obj_name}.yaml"}
            if name not in expected:
                problems.append(f"{rel}/{name}: expected {' or '.join(sorted(expected))}")
        if rel.parts[0] == "infrastructure" and any(f.startswith("helmrelease") for f in files):
            missing = [
                f
                for f in ("namespace", "helmrepository")
                if not any(x.startswith(f) for x in files)
            ]
            problems += [f"{rel}: component without {f}.yaml" for f in missing]
    assert not problems, "\n".join(problems)


def test_opt_in_routes_are_documented_and_off() -> None:
    for rel, layer in OPT_IN_DIRS.items():
        name = Path(rel).name
        assert name not in kustomization_resources(KUBE / layer), f"{rel} must stay opt-in"
        assert name in (KUBE / layer / "kustomization.yaml").read_text(), (
            f"{layer}/kustomization.yaml must explain how to enable {name}"
        )
        assert all(obj["kind"] == "HTTPRoute" for obj in build(rel))


def test_yamllint() -> None:
    config = YamlLintConfig(file=str(ROOT / ".yamllint.yaml"))
    problems = [
        f"{p.relative_to(ROOT)}:{e.line}: {e.message}"
        for p in yaml_files()
        for e in linter.run(p.read_text(), config, str(p))
    ]
    assert not problems, "\n".join(problems)
