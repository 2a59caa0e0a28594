"""Offline checks of the Flux-managed manifests under kubernetes/.

Run with: .venv/bin/python -m pytest tests/test_manifests.py

The four directories kubernetes/{infrastructure,infrastructure-config,cluster-policies,apps} are
the paths of the four Flux Kustomizations that gitops/ creates (in that dependency order;
infrastructure-config and cluster-policies run in parallel). Everything here runs without a
cluster: kustomize builds, strict OpenAPI validation of built-in kinds (kubernetes-validate),
structural checks of every custom resource, layer ordering against the CRDs, variable
substitution, forbidden literals, chart values.
"""

from __future__ import annotations

import functools
import json
import math
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import default_settings
from yamllint import linter
from yamllint.config import YamlLintConfig

from settings import DERIVED_SETTING_KEYS
from settings.backup import BACKUP_NAMESPACE, ETCD_BACKUP_ROLE

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "kubernetes"
SETTINGS_FILE = ROOT / "Pulumi.homelab.yaml"
SECRETS_EXAMPLE_FILE = ROOT / "secrets.example.yaml"
SETTINGS_KEY = "homelab:clusterSettings"
SECRETS_KEY = "clusterSecrets"

# Kubernetes version of Talos 1.12 (schemas shipped with kubernetes-validate).
K8S_VERSION = "1.35.0"

# Flux Kustomization paths, with their position in the dependency graph. infrastructure-config
# and cluster-policies both depend only on infrastructure, so neither may rely on the other.
LAYERS = ("infrastructure", "infrastructure-config", "cluster-policies", "apps")
LAYER_RANK = {
    "flux": 0,
    "talos": 0,
    "infrastructure": 1,
    "infrastructure-config": 2,
    "cluster-policies": 2,
    "apps": 3,
}
# Directories that are deliberately NOT listed in their layer (documented opt-ins).
OPT_IN_DIRS = {"infrastructure-config/monitoring-routes": "infrastructure-config"}

# Variables the program derives and puts into the cluster-settings ConfigMap itself
# (not set by the user in Pulumi.homelab.yaml).
DERIVED_SETTINGS = frozenset(DERIVED_SETTING_KEYS)

# API group -> layer whose reconciliation installs its CRDs ("flux": installed by Pulumi
# together with the Flux controllers, before any layer; "talos": applied by Talos itself at
# bootstrap when kubernetesTalosAPIAccess is on, internal/app/machined/pkg/controllers/k8s/
# manifest.go).
CRD_GROUP_LAYER = {
    "talos.dev": "talos",
    "source.toolkit.fluxcd.io": "flux",
    "kustomize.toolkit.fluxcd.io": "flux",
    "helm.toolkit.fluxcd.io": "flux",
    "notification.toolkit.fluxcd.io": "flux",
    "cert-manager.io": "infrastructure",
    "acme.cert-manager.io": "infrastructure",
    "monitoring.coreos.com": "infrastructure",
    "gateway.networking.k8s.io": "infrastructure",
    "kyverno.io": "infrastructure",
    "traefik.io": "infrastructure",
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
CLUSTER_SCOPED_CRD_KINDS = frozenset({"ClusterIssuer", "ClusterPolicy"})

# HelmRelease name -> (chart, exact version, chart repository URL).
EXPECTED_CHARTS = {
    "cert-manager": ("cert-manager", "v1.19.3", "https://charts.jetstack.io"),
    "traefik": ("traefik", "38.0.2", "https://traefik.github.io/charts"),
    "traefik-crds": ("traefik-crds", "1.13.1", "https://traefik.github.io/charts"),
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
WHOLE_VAR_REF = re.compile(r"^\$\{[_a-zA-Z][_a-zA-Z0-9]*(?::=[^}]*)?\}$")
DOMAIN_VAR = "${CLUSTER_DOMAIN}"
GATEWAY = ("traefik", "traefik-gateway")  # (namespace, name) created by the Traefik chart

Obj = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _kustomize_command() -> list[str]:
    if exe := shutil.which("kustomize"):
        return [exe, "build"]
    if exe := shutil.which("kubectl"):
        return [exe, "kustomize"]
    pytest.fail("neither `kustomize` nor `kubectl` is on PATH")


@functools.cache
def build(rel: str) -> tuple[Obj, ...]:
    """kustomize build of kubernetes/<rel>; raises with kustomize's error on failure."""
    result = subprocess.run(
        [*_kustomize_command(), str(KUBE / rel)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise AssertionError(f"kustomize build {rel} failed:\n{result.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


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
    """`${VAR:=default}` -> default; anything else unchanged."""
    match = VAR_REF.fullmatch(value)
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


# --------------------------------------------------------------------------------------------
# Detectors (shared with their self-tests at the end of the file)
# --------------------------------------------------------------------------------------------

# Hosts that may appear literally: upstream projects, registries, chart repositories, ACME,
# Sigstore, in-cluster service names, API groups and well-known label prefixes.
ALLOWED_HOST_SUFFIXES = (
    "k8s.io",
    "kubernetes.io",
    "fluxcd.io",
    "cert-manager.io",
    "coreos.com",
    "kyverno.io",
    "traefik.io",
    "github.com",
    "github.io",
    "githubusercontent.com",
    "ghcr.io",
    "docker.io",
    "quay.io",
    "jetstack.io",
    "letsencrypt.org",
    "sigstore.dev",
    "grafana.com",
    "prometheus.io",
    "helm.sh",
    "cluster.local",
    "talos.dev",
)
# Top-level domains that make a dotted token look like a host name. Tokens such as
# `loki.source.kubernetes` or `grafana.ini` are configuration identifiers, not hosts.
HOST_TLDS = frozenset(
    {
        *("com", "net", "org", "io", "dev", "app", "sh", "me", "co", "info", "biz", "xyz"),
        *("ca", "de", "uk", "fr", "nl", "eu", "us", "ch", "at", "be", "se", "no", "fi", "dk"),
        *("pl", "it", "es", "pt", "cz", "au", "nz", "jp", "cn", "in", "br", "ai", "gg", "tv"),
        *("cloud", "tech", "online", "site", "page", "space", "zone", "host", "network"),
        *("email", "link", "one", "cc", "ly", "test", "example"),
        *("lan", "local", "home", "arpa", "internal", "localdomain"),
    }
)
HOST_RE = re.compile(
    r"(?<![\w.@-])((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,63}))(?![\w-])",
    re.IGNORECASE,
)
IPV4_RE = re.compile(r"(?<![\d.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\d.])")
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
SECRET_PATTERNS = {
    "age private key": re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]{20,}"),
    "PEM private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "DigitalOcean token": re.compile(r"\bdo[por]_v1_[0-9a-f]{64}\b"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
}


# Field names that hold credentials themselves (not references to a Secret or key).
CREDENTIAL_KEYS = frozenset(
    {
        *("password", "passwd", "adminpassword", "token", "apitoken", "api_token", "apikey"),
        *("api_key", "secret", "secretkey", "secret_key", "secretaccesskey", "user_key"),
        *("secret_access_key", "accesskeyid", "access_key_id", "bearer_token", "bearertoken"),
        *("privatekey", "private_key", "clientsecret", "client_secret", "auth_password"),
    }
)
CREDENTIAL_ENV = re.compile(r"(?i)(passw(or)?d|secret|token|api_?key|private_?key|credential)")


def literal_hosts(text: str) -> list[str]:
    found = []
    for match in HOST_RE.finditer(text):
        host, tld = match.group(1).lower(), match.group(2).lower()
        if tld not in HOST_TLDS:
            continue
        if any(host == s or host.endswith("." + s) for s in ALLOWED_HOST_SUFFIXES):
            continue
        found.append(host)
    return found


def literal_ipv4s(text: str) -> list[str]:
    found = []
    for match in IPV4_RE.finditer(text):
        octets = [int(o) for o in match.groups()]
        if all(o <= 255 for o in octets) and octets != [0, 0, 0, 0]:
            found.append(match.group(0))
    return found


def literal_emails(text: str) -> list[str]:
    return EMAIL_RE.findall(text)


def shannon_entropy(value: str) -> float:
    counts = {c: value.count(c) for c in set(value)}
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def looks_random(value: str) -> bool:
    """A token-like scalar: long, mixed character classes, high entropy."""
    if len(value) < 20 or not re.fullmatch(r"[A-Za-z0-9+/=_-]+", value):
        return False
    if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", value):  # git commit / sha256 digest
        return False
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    return classes >= 3 and shannon_entropy(value) > 3.5


def secret_like_literals(text: str) -> list[str]:
    found = [name for name, pattern in SECRET_PATTERNS.items() if pattern.search(text)]
    found += [
        f"random-looking token {token[:6]}..."
        for token in re.findall(r"[A-Za-z0-9+/=_-]{20,}", text)
        if looks_random(token)
    ]
    return found


def bad_substitutions(text: str) -> list[str]:
    """`${...}` expressions Flux's envsubst would reject or mangle (`$${` is an escape)."""
    bad = []
    for match in re.finditer(r"(?<!\$)\$\{", text):
        ref = VAR_REF.match(text, match.start())
        if ref is None:
            bad.append(text[match.start() : match.start() + 40].splitlines()[0])
    return bad


def variable_refs(text: str) -> list[tuple[str, str | None]]:
    return [
        (m.group("name"), m.group("default"))
        for m in VAR_REF.finditer(text)
        if text[max(m.start() - 1, 0)] != "$" or m.start() == 0
    ]


def resources_problems(block: Any) -> list[str]:
    """A container resources block must have requests and limits for cpu and memory."""
    if not isinstance(block, dict):
        return ["not a mapping"]
    problems = []
    for part in ("requests", "limits"):
        values = block.get(part)
        if not isinstance(values, dict):
            problems.append(f"no {part}")
            continue
        problems += [f"{part} without {res}" for res in ("cpu", "memory") if not values.get(res)]
    return problems


def is_storage_request(block: Any) -> bool:
    """PVC-style `resources: {requests: {storage: ...}}` (not a container)."""
    return (
        isinstance(block, dict)
        and set(block) == {"requests"}
        and set(block["requests"] or {}) == {"storage"}
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
    failures = []
    for layer, obj in layered_objects():
        if obj["kind"] in CRD_API_VERSIONS or api_group(obj) in CRD_GROUP_LAYER:
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            failures.append(
                f"{layer}: {ident(obj)}: no schema for {obj['apiVersion']} (typo? unknown CRD?)"
            )
        except kubernetes_validate.ValidationError as err:
            failures.append(
                f"{layer}: {ident(obj)}: {err.message} at {'/'.join(map(str, err.path))}"
            )
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
# Custom resources: structure
# --------------------------------------------------------------------------------------------


def check_helmrelease(obj: Obj, idx: Index) -> list[str]:
    problems = []
    spec, name = obj["spec"], obj["metadata"]["name"]
    chart = dig(spec, ("chart", "spec")) or {}
    version = str(chart.get("version", ""))
    if not re.fullmatch(r"v?\d+\.\d+\.\d+", version):
        problems.append(f"chart version {version!r} is not pinned to an exact x.y.z")
    if not spec.get("interval"):
        problems.append("no spec.interval")
    ref = chart.get("sourceRef") or {}
    source = idx.get(
        ref.get("kind", ""), ref.get("namespace", obj["metadata"]["namespace"]), ref.get("name", "")
    )
    if ref.get("kind") != "HelmRepository" or source is None:
        problems.append(f"sourceRef {ref} does not resolve to a HelmRepository in the tree")
    if name in EXPECTED_CHARTS:
        want_chart, want_version, want_url = EXPECTED_CHARTS[name]
        if (chart.get("chart"), version) != (want_chart, want_version):
            problems.append(
                f"chart {chart.get('chart')} {version}, expected {want_chart} {want_version}"
            )
        if source is not None and source["spec"].get("url") != want_url:
            problems.append(f"repository {source['spec'].get('url')}, expected {want_url}")
    for phase in ("install", "upgrade"):
        retries = dig(spec, (phase, "remediation", "retries"))
        if not isinstance(retries, int) or retries == 0:
            problems.append(f"{phase}.remediation.retries must be set (non-zero)")
        want_crds = CRD_POLICY_EXCEPTIONS.get(name, "CreateReplace")
        if dig(spec, (phase, "crds")) != want_crds:
            problems.append(f"{phase}.crds must be {want_crds}")
    for dep in spec.get("dependsOn", []):
        if (
            idx.get("HelmRelease", dep.get("namespace", obj["metadata"]["namespace"]), dep["name"])
            is None
        ):
            problems.append(f"dependsOn {dep} does not resolve")
    if not isinstance(spec.get("values"), dict):
        problems.append("no values")
    return problems


def check_helmrepository(obj: Obj, _idx: Index) -> list[str]:
    spec = obj["spec"]
    problems = (
        []
        if str(spec.get("url", "")).startswith("https://")
        else [f"url {spec.get('url')} is not https"]
    )
    return problems + ([] if spec.get("interval") else ["no interval"])


def check_gitrepository(obj: Obj, _idx: Index) -> list[str]:
    spec, problems = obj["spec"], []
    if not str(spec.get("url", "")).startswith("https://"):
        problems.append(f"url {spec.get('url')} is not https")
    ref = spec.get("ref") or {}
    if not (ref.get("commit") or ref.get("tag") or ref.get("semver")):
        problems.append(f"ref {ref} is not pinned (commit, tag or semver)")
    if ref.get("commit") and not re.fullmatch(r"[0-9a-f]{40}", ref["commit"]):
        problems.append(f"ref.commit {ref['commit']} is not a full SHA")
    if obj["metadata"]["name"] == "gateway-api":
        if spec.get("url") != "https://github.com/kubernetes-sigs/gateway-api":
            problems.append("gateway-api must come from kubernetes-sigs/gateway-api")
        if ref.get("tag") != "v1.4.1" and not ref.get("commit"):
            problems.append("gateway-api must be pinned to the v1.4.1 release")
    return problems + ([] if spec.get("interval") else ["no interval"])


def check_flux_kustomization(obj: Obj, idx: Index) -> list[str]:
    spec, problems = obj["spec"], []
    ref = spec.get("sourceRef") or {}
    if (
        idx.get(
            ref.get("kind", ""),
            ref.get("namespace", obj["metadata"]["namespace"]),
            ref.get("name", ""),
        )
        is None
    ):
        problems.append(f"sourceRef {ref} does not resolve")
    if not str(spec.get("path", "")).startswith("./"):
        problems.append(f"path {spec.get('path')} must start with ./")
    if not isinstance(spec.get("prune"), bool) or not spec.get("interval"):
        problems.append("prune (explicit) and interval are required")
    if obj["metadata"]["name"] == "gateway-api" and (
        spec.get("prune") is not False or spec.get("path") != "./config/crd"
    ):
        problems.append(
            "gateway-api CRDs: path ./config/crd, prune: false (pruning a CRD deletes its objects)"
        )
    return problems


def check_provider(obj: Obj, _idx: Index) -> list[str]:
    spec = obj["spec"]
    if spec.get("type") != "alertmanager":
        return [f"type {spec.get('type')}, expected alertmanager"]
    if not re.fullmatch(
        r"http://[a-z0-9-]+\.monitoring\.svc\.cluster\.local:9093/api/v2/alerts/",
        str(spec.get("address")),
    ):
        return [f"address {spec.get('address')} is not the in-cluster Alertmanager v2 alerts API"]
    return []


def check_alert(obj: Obj, idx: Index) -> list[str]:
    spec, problems = obj["spec"], []
    if (
        idx.get("Provider", obj["metadata"]["namespace"], dig(spec, ("providerRef", "name")) or "")
        is None
    ):
        problems.append(
            f"providerRef {spec.get('providerRef')} not found in {obj['metadata']['namespace']}"
        )
    if spec.get("eventSeverity") != "error":
        problems.append("eventSeverity must be error")
    sources = {
        (s.get("kind"), s.get("namespace", obj["metadata"]["namespace"]))
        for s in spec.get("eventSources", [])
    }
    for ns in ("flux-system", "monitoring"):
        for kind in ("GitRepository", "Kustomization", "HelmRelease", "HelmRepository"):
            if (kind, ns) not in sources:
                problems.append(f"eventSources lacks {kind} in {ns}")
    for hr in idx.of_kind("HelmRelease"):
        if ("HelmRelease", hr["metadata"]["namespace"]) not in sources:
            problems.append(f"HelmReleases in {hr['metadata']['namespace']} are not alerted on")
    return problems


def check_clusterissuer(obj: Obj, idx: Index) -> list[str]:
    acme, problems = dig(obj, ("spec", "acme")) or {}, []
    servers = {
        "https://acme-v02.api.letsencrypt.org/directory",
        "https://acme-staging-v02.api.letsencrypt.org/directory",
    }
    if acme.get("server") not in servers:
        problems.append(f"ACME server {acme.get('server')} is not Let's Encrypt")
    if acme.get("email") != "${ACME_EMAIL}":
        problems.append("email must be ${ACME_EMAIL}")
    if not dig(acme, ("privateKeySecretRef", "name")):
        problems.append("no privateKeySecretRef")
    solvers = acme.get("solvers") or []
    if not solvers:
        problems.append("no solvers")
    for solver in solvers:
        token = dig(solver, ("dns01", "digitalocean", "tokenSecretRef")) or {}
        secret = idx.get("Secret", "cert-manager", token.get("name", ""))
        if secret is None or token.get("key") not in (secret.get("stringData") or {}):
            problems.append(
                f"DNS-01 DigitalOcean tokenSecretRef {token}: no such Secret key in cert-manager"
            )
    return problems


def check_certificate(obj: Obj, idx: Index) -> list[str]:
    spec, problems = obj["spec"], []
    issuer = spec.get("issuerRef") or {}
    if (
        issuer.get("kind") != "ClusterIssuer"
        or idx.get("ClusterIssuer", None, resolve_default(issuer.get("name", ""))) is None
    ):
        problems.append(f"issuerRef {issuer} does not resolve to a ClusterIssuer in the tree")
    if not spec.get("secretName"):
        problems.append("no secretName")
    if obj["metadata"]["name"] == "wildcard":
        if set(spec.get("dnsNames", [])) != {DOMAIN_VAR, "*." + DOMAIN_VAR}:
            problems.append(f"dnsNames {spec.get('dnsNames')} must be the domain and its wildcard")
        if obj["metadata"]["namespace"] != GATEWAY[0]:
            problems.append(
                "the wildcard Certificate must sit next to the Gateway (traefik namespace)"
            )
    return problems


def check_httproute(obj: Obj, idx: Index) -> list[str]:
    spec, problems = obj["spec"], []
    parents = spec.get("parentRefs") or []
    if not parents:
        problems.append("no parentRefs")
    for ref in parents:
        if (ref.get("namespace"), ref.get("name")) != GATEWAY or ref.get(
            "sectionName", "websecure"
        ) != "websecure":
            problems.append(f"parentRef {ref} is not traefik/traefik-gateway (websecure)")
    hostnames = spec.get("hostnames") or []
    if not hostnames or not all(h.endswith("." + DOMAIN_VAR) for h in hostnames):
        problems.append(f"hostnames {hostnames} must be <name>.{DOMAIN_VAR}")
    namespace = obj["metadata"]["namespace"]
    for rule in spec.get("rules") or [{}]:
        for backend in rule.get("backendRefs") or [None]:
            if not backend or not backend.get("name") or not isinstance(backend.get("port"), int):
                problems.append(f"backendRef {backend} needs a name and an integer port")
                continue
            service = idx.get("Service", backend.get("namespace", namespace), backend["name"])
            if service is not None and backend["port"] not in [
                p["port"] for p in service["spec"]["ports"]
            ]:
                problems.append(
                    f"backendRef port {backend['port']} is not a port of Service {backend['name']}"
                )
    return problems


def check_clusterpolicy(obj: Obj, _idx: Index) -> list[str]:
    spec, problems = obj["spec"], []
    deprecated = (
        "validationFailureAction",
        "validationFailureActionOverrides",
        "webhookTimeoutSeconds",
        "failurePolicy",
    )
    problems += [
        f"spec.{key} is deprecated since Kyverno 1.13" for key in deprecated if key in spec
    ]
    timeout = dig(spec, ("webhookConfiguration", "timeoutSeconds"))
    if not isinstance(timeout, int) or not 1 <= timeout <= 30:
        problems.append("webhookConfiguration.timeoutSeconds must be 1..30")
    for rule in spec.get("rules", []):
        if "validate" in rule and rule["validate"].get("failureAction") not in ("Audit", "Enforce"):
            problems.append(f"rule {rule['name']}: validate.failureAction must be Audit or Enforce")
        for verify in rule.get("verifyImages", []):
            if verify.get("failureAction") not in ("Audit", "Enforce"):
                problems.append(
                    f"rule {rule['name']}: verifyImages.failureAction must be Audit or Enforce"
                )
            if verify.get("failureAction") == "Audit" and verify.get("mutateDigest", True):
                problems.append(
                    f"rule {rule['name']}: Audit must not mutate digests (mutateDigest: false)"
                )
    return problems + (
        check_verify_image_signatures(spec)
        if obj["metadata"]["name"] == "verify-image-signatures"
        else []
    )


def check_verify_image_signatures(spec: Obj) -> list[str]:
    problems = []
    if dig(spec, ("webhookConfiguration", "timeoutSeconds")) != 30:
        problems.append("webhook timeout must be 30s")
    rules = spec.get("rules", [])
    verifies = [v for r in rules for v in r.get("verifyImages", [])]
    refs = {ref for v in verifies for ref in v.get("imageReferences", [])}
    if not {"ghcr.io/fluxcd/*", "ghcr.io/kyverno/*"} <= refs:
        problems.append(
            f"imageReferences {sorted(refs)} must cover ghcr.io/fluxcd/* and ghcr.io/kyverno/*"
        )
    if any(v.get("failureAction") != "Audit" for v in verifies):
        problems.append("verify-image-signatures must audit, not enforce")
    keyless = [
        e["keyless"]
        for v in verifies
        for a in v.get("attestors", [])
        for e in a.get("entries", [])
        if "keyless" in e
    ]
    if not keyless or any(
        k.get("issuer") != "https://token.actions.githubusercontent.com"
        or not dig(k, ("rekor", "url"))
        for k in keyless
    ):
        problems.append("attestors must be keyless, GitHub Actions OIDC issuer, with Rekor")
    excluded = {
        ns
        for r in rules
        for c in dig(r, ("exclude", "any")) or []
        for ns in dig(c, ("resources", "namespaces")) or []
    }
    if not {"kube-system", "kyverno"} <= excluded:
        problems.append(
            f"excluded namespaces {sorted(excluded)} must include kube-system and kyverno"
        )
    return problems


def check_prometheusrule(obj: Obj, _idx: Index) -> list[str]:
    problems, alerts = [], {}
    for group in dig(obj, ("spec", "groups")) or []:
        for rule in group.get("rules", []):
            if "alert" in rule:
                alerts[rule["alert"]] = rule
                if not rule.get("expr") or dig(rule, ("labels", "severity")) not in (
                    "critical",
                    "warning",
                    "info",
                ):
                    problems.append(
                        f"alert {rule['alert']}: needs expr and severity critical/warning/info"
                    )
                if not dig(rule, ("annotations", "summary")):
                    problems.append(f"alert {rule['alert']}: no summary annotation")
            elif not (rule.get("record") and rule.get("expr")):
                problems.append(f"rule {rule} is neither an alert nor a recording rule")
    if obj["metadata"]["name"] == "homelab":
        flux, cert = (
            alerts.get("FluxReconciliationFailure"),
            alerts.get("CertManagerCertExpirySoon"),
        )
        if (
            not flux
            or flux.get("for") != "5m"
            or "Ready" not in str(flux.get("annotations"))
            or 'ready="False"' not in flux["expr"]
        ):
            problems.append("FluxReconciliationFailure: Ready=False for 5m")
        if not cert or cert.get("for") != "1h" or "7 * 24 * 3600" not in cert["expr"]:
            problems.append("CertManagerCertExpirySoon: expiry within 7 days for 1h")
        if any(dig(a, ("labels", "severity")) != "warning" for a in (flux, cert) if a):
            problems.append("both homelab alerts are warnings")
    return problems


def check_podmonitor(obj: Obj, _idx: Index) -> list[str]:
    spec, problems = obj["spec"], []
    if not spec.get("selector") or not spec.get("podMetricsEndpoints"):
        problems.append("selector and podMetricsEndpoints are required")
    if obj["metadata"]["name"] == "flux-system":
        if "flux-system" not in (dig(spec, ("namespaceSelector", "matchNames")) or []):
            problems.append("must select the flux-system namespace")
        if "http-prom" not in [e.get("port") for e in spec.get("podMetricsEndpoints", [])]:
            problems.append("must scrape port http-prom")
    return problems


def check_talos_serviceaccount(obj: Obj, _idx: Index) -> list[str]:
    """Talos' CRD has spec.roles only; its controller refuses roles the machine config does not
    allow (kubeaccess/serviceaccount/crd_controller.go), so they must be exactly those."""
    problems = []
    if set(obj["spec"]) != {"roles"}:
        problems.append(f"spec has {sorted(obj['spec'])}; Talos' CRD defines only roles")
    if obj["spec"].get("roles") != [ETCD_BACKUP_ROLE]:
        problems.append(f"roles must be [{ETCD_BACKUP_ROLE}] (the only role Talos allows)")
    if obj["metadata"]["namespace"] != BACKUP_NAMESPACE:
        problems.append(f"must live in {BACKUP_NAMESPACE}, the namespace Talos allows")
    return problems


def check_servicemonitor(obj: Obj, _idx: Index) -> list[str]:
    spec = obj["spec"]
    if not spec.get("selector") or not spec.get("endpoints"):
        return ["selector and endpoints are required"]
    return []


CRD_CHECKS: dict[str, Callable[[Obj, Index], list[str]]] = {
    "HelmRelease": check_helmrelease,
    "HelmRepository": check_helmrepository,
    "GitRepository": check_gitrepository,
    "Kustomization": check_flux_kustomization,
    "Provider": check_provider,
    "Alert": check_alert,
    "ClusterIssuer": check_clusterissuer,
    "Certificate": check_certificate,
    "HTTPRoute": check_httproute,
    "ClusterPolicy": check_clusterpolicy,
    "PrometheusRule": check_prometheusrule,
    "PodMonitor": check_podmonitor,
    "ServiceMonitor": check_servicemonitor,
    "ServiceAccount": check_talos_serviceaccount,
}


def test_custom_resources_are_well_formed() -> None:
    """Every custom resource uses the served apiVersion and passes its kind's checks;
    a custom resource of a kind without checks fails (nothing is skipped)."""
    idx, problems = index(), []
    for obj in idx.objects:
        kind = obj["kind"]
        if kind not in CRD_API_VERSIONS and api_group(obj) not in CRD_GROUP_LAYER:
            continue
        if obj["apiVersion"] != CRD_API_VERSIONS.get(kind):
            problems.append(
                f"{ident(obj)}: {obj['apiVersion']}, expected {CRD_API_VERSIONS.get(kind)}"
            )
            continue
        if kind not in CRD_CHECKS:
            problems.append(
                f"{ident(obj)}: no structural checks for kind {kind}; add them to CRD_CHECKS"
            )
            continue
        namespaced = kind not in CLUSTER_SCOPED_CRD_KINDS
        if namespaced != bool(obj["metadata"].get("namespace")):
            problems.append(
                f"{ident(obj)}: {'needs' if namespaced else 'must not have'} a namespace"
            )
        if not isinstance(obj.get("spec"), dict):
            problems.append(f"{ident(obj)}: no spec")
            continue
        problems += [f"{ident(obj)}: {p}" for p in CRD_CHECKS[kind](obj, idx)]
    assert not problems, "\n".join(problems)


def test_expected_objects_exist() -> None:
    idx = index()
    expected = [
        *(("HelmRelease", name) for name in EXPECTED_CHARTS),
        ("ClusterIssuer", "letsencrypt-production"),
        ("ClusterIssuer", "letsencrypt-staging"),
        ("Certificate", "wildcard"),
        ("PrometheusRule", "homelab"),
        ("PodMonitor", "flux-system"),
        ("Provider", "alertmanager"),
        ("Alert", "flux-errors"),
        ("ClusterPolicy", "verify-image-signatures"),
        ("GitRepository", "gateway-api"),
        ("Kustomization", "gateway-api"),
        ("HTTPRoute", "grafana"),
        ("HTTPRoute", "whoami"),
    ]
    names = {(obj["kind"], obj["metadata"]["name"]) for obj in idx.objects}
    assert not [e for e in expected if e not in names], [e for e in expected if e not in names]


# --------------------------------------------------------------------------------------------
# Layering
# --------------------------------------------------------------------------------------------


def test_crds_are_installed_by_an_earlier_layer() -> None:
    """Flux's server-side dry-run rejects an object whose CRD does not exist yet, so an object
    must never share a layer with (or precede) the layer that installs its CRD."""
    problems = []
    for layer, obj in layered_objects():
        installer = CRD_GROUP_LAYER.get(api_group(obj))
        if installer is not None and LAYER_RANK[installer] >= LAYER_RANK[layer]:
            problems.append(
                f"{ident(obj)} ({api_group(obj)}) is in {layer}, but its CRDs come from {installer}"
            )
    assert not problems, "\n".join(problems)


def _installs(group: str, infra: list[Obj]) -> bool:
    def chart(obj: Obj) -> str | None:
        return (
            dig(obj, ("spec", "chart", "spec", "chart")) if obj["kind"] == "HelmRelease" else None
        )

    def values(obj: Obj, *path: str) -> Any:
        return dig(obj, ("spec", "values", *path))

    if group in ("cert-manager.io", "acme.cert-manager.io"):
        return any(
            chart(o) == "cert-manager" and values(o, "crds", "enabled") is True for o in infra
        )
    if group == "monitoring.coreos.com":
        return any(
            chart(o) == "kube-prometheus-stack" and values(o, "crds", "enabled") is not False
            for o in infra
        )
    if group == "kyverno.io":
        return any(
            chart(o) == "kyverno" and values(o, "crds", "install") is not False for o in infra
        )
    if group == "traefik.io":
        return any(chart(o) == "traefik" for o in infra)
    if group == "gateway.networking.k8s.io":
        return any(
            o["kind"] == "Kustomization" and dig(o, ("spec", "path")) == "./config/crd"
            for o in infra
        )
    return False


def test_crd_installer_table_is_true() -> None:
    """The table used above must describe the tree: each group said to come from the
    infrastructure layer is really installed there."""
    infra = list(build("infrastructure"))
    wrong = [
        g
        for g, layer in CRD_GROUP_LAYER.items()
        if layer == "infrastructure" and not _installs(g, infra)
    ]
    assert not wrong, f"infrastructure does not install the CRDs of {wrong}"


def _depends_on(idx: Index, name: str) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        for dep in dig(idx.helmrelease(todo.pop()), ("spec", "dependsOn")) or []:
            if dep["name"] not in seen:
                seen.add(dep["name"])
                todo.append(dep["name"])
    return seen


def test_helmrelease_ordering() -> None:
    """Inside the infrastructure layer ordering is HelmRelease dependsOn: no cycles, every chart
    that creates a ServiceMonitor/PodMonitor waits for kube-prometheus-stack (which installs
    those CRDs), Traefik waits for cert-manager, Alloy for Loki, the volumes for the NFS
    provisioner."""
    idx, problems = index(), []
    for hr in idx.of_kind("HelmRelease"):
        name = hr["metadata"]["name"]
        deps = _depends_on(idx, name)
        if name in deps:
            problems.append(f"{name}: dependency cycle")
        monitors = [
            p
            for p, v in walk(hr["spec"].get("values"))
            if p
            and p[-1].lower() in {"servicemonitor", "podmonitor"}
            and isinstance(v, dict)
            and v.get("enabled") is True
        ]
        if monitors and name != "kube-prometheus-stack" and "kube-prometheus-stack" not in deps:
            problems.append(
                f"{name}: enables {'.'.join(monitors[0])} but no dependsOn kube-prometheus-stack"
            )
    required = {
        "traefik": "cert-manager",
        "alloy": "loki",
        "loki": "nfs-subdir-external-provisioner",
        "kube-prometheus-stack": "nfs-subdir-external-provisioner",
    }
    problems += [
        f"{a} must depend on {b}" for a, b in required.items() if b not in _depends_on(idx, a)
    ]
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------------
# Variables, literals, secrets
# --------------------------------------------------------------------------------------------


def test_substitution_syntax_is_valid() -> None:
    """Flux substitutes every `${...}` of every object (comments included); one it cannot
    parse fails the whole layer. Files that need literal `${` must opt out with the annotation
    kustomize.toolkit.fluxcd.io/substitute: disabled (or escape as `$${`)."""
    bad = {
        str(p.relative_to(ROOT)): b
        for p in yaml_files()
        if not substitution_disabled(p) and (b := bad_substitutions(p.read_text()))
    }
    assert not bad, f"unparseable substitutions: {bad}"


def test_variables_are_provided() -> None:
    """Every ${VAR} is a key of cluster-settings (Pulumi.homelab.yaml homelab:clusterSettings,
    plus the derived ones) or cluster-secrets (secrets.example.yaml clusterSecrets), or has a
    `:=` default. Undefined variables would silently become empty strings."""
    settings, secrets = declared_variables()
    bad_names = sorted(n for n in settings | secrets if not FLUX_VAR_NAME.match(n))
    assert not bad_names, f"not valid Flux variable names: {bad_names}"
    missing: dict[str, list[str]] = {}
    for path in yaml_files():
        if substitution_disabled(path):
            continue
        for name, default in variable_refs(path.read_text()):
            if default is None and name not in settings | secrets:
                missing.setdefault(name, []).append(str(path.relative_to(ROOT)))
    assert not missing, f"variables without a source or default: {missing}"


def test_secret_variables_only_in_secrets() -> None:
    """cluster-secrets values may only be substituted into Secret objects (never into
    ConfigMaps, HelmRelease values or other readable objects)."""
    _, secrets = declared_variables()
    leaks = []
    for _, obj in layered_objects():
        if obj["kind"] == "Secret":
            continue
        names = {name for name, _ in variable_refs(json.dumps(obj))}
        leaks += [f"{ident(obj)} uses ${{{name}}}" for name in sorted(names & secrets)]
    assert not leaks, "\n".join(leaks)


def test_secrets_hold_only_substituted_values() -> None:
    problems = []
    for _, obj in layered_objects():
        if obj["kind"] != "Secret":
            continue
        if obj.get("data"):
            problems.append(f"{ident(obj)}: use stringData with ${{VAR}} values, not data")
        for key, value in (obj.get("stringData") or {}).items():
            if not WHOLE_VAR_REF.match(str(value)):
                problems.append(f"{ident(obj)}: stringData.{key} is a literal, not a ${{VAR}}")
    assert not problems, "\n".join(problems)


def inline_credentials(obj: Any) -> list[str]:
    """Credential-named fields (env entries, chart values, configs) holding a literal."""
    found = []
    for path, value in walk(obj):
        if isinstance(value, dict) and isinstance(value.get("name"), str) and "value" in value:
            if CREDENTIAL_ENV.search(value["name"]) and _is_literal(value["value"]):
                found.append(f"{'.'.join(path)} env {value['name']}")
        elif path and path[-1].lower() in CREDENTIAL_KEYS and _is_literal(value):
            found.append(".".join(path))
    return found


def _is_literal(value: Any) -> bool:
    return isinstance(value, str | int) and str(value) != "" and not WHOLE_VAR_REF.match(str(value))


def test_no_inline_credentials() -> None:
    """Passwords, tokens and keys are never written inline: env vars take them from Secrets
    (valueFrom), configs from mounted files, Secrets from ${VAR} substitution."""
    found = [
        f"{ident(obj)}: {hit}"
        for _, obj in layered_objects()
        if obj["kind"] != "Secret"
        for hit in inline_credentials(obj)
    ]
    assert not found, "\n".join(found)


def test_no_literal_domains_ips_or_emails() -> None:
    found = {}
    for path in text_files():
        text = path.read_text()
        hits = [*literal_hosts(text), *literal_ipv4s(text), *literal_emails(text)]
        if hits:
            found[str(path.relative_to(ROOT))] = sorted(set(hits))
    assert not found, f"literal hosts/IPs/e-mails (use ${{VAR}} or extend the allow-list): {found}"


def test_no_secret_material() -> None:
    """Known token formats and high-entropy literals, plus detect-secrets. detect-secrets'
    keyword hits are accepted only when the value is the name of a Secret or Secret key of the
    tree (e.g. `secretName: wildcard-tls`)."""
    found = {
        str(p.relative_to(ROOT)): hits
        for p in text_files()
        if (hits := secret_like_literals(p.read_text()))
    }
    idx = index()
    references = {s["metadata"]["name"] for s in idx.of_kind("Secret")}
    references |= {k for s in idx.of_kind("Secret") for k in s.get("stringData") or {}}
    references |= {c["spec"]["secretName"] for c in idx.of_kind("Certificate")}
    # Talos answers each of its ServiceAccounts with a Secret of the same name.
    references |= {a["metadata"]["name"] for a in idx.of_kind("ServiceAccount")}
    collection = SecretsCollection()
    with default_settings():
        for path in text_files():
            collection.scan_file(str(path))
    for filename, secret in collection:
        if secret.type == "Secret Keyword" and secret.secret_value in references:
            continue
        found.setdefault(str(Path(filename).resolve().relative_to(ROOT)), []).append(
            f"{secret.type} line {secret.line_number}"
        )
    assert not found, f"possible secrets: {found}"


# --------------------------------------------------------------------------------------------
# Chart values
# --------------------------------------------------------------------------------------------


def test_helmreleases_set_resources_for_every_container() -> None:
    idx, problems = index(), []
    for hr in idx.of_kind("HelmRelease"):
        name, values = hr["metadata"]["name"], hr["spec"].get("values") or {}
        for path in REQUIRED_RESOURCES.get(name, []):
            block = dig(values, path)
            problems += [
                f"{name}: {'.'.join(path)}: {p}"
                for p in (resources_problems(block) if block is not None else ["missing"])
            ]
        blocks = [
            (p, v)
            for p, v in walk(values)
            if p and p[-1] in {"resources", "podResources"} and isinstance(v, dict)
        ]
        for path, block in blocks:
            if not is_storage_request(block):
                problems += [f"{name}: {'.'.join(path)}: {p}" for p in resources_problems(block)]
        if name not in REQUIRED_RESOURCES and not blocks:
            problems.append(f"{name}: no resources at all (add it to REQUIRED_RESOURCES)")
    assert not problems, "\n".join(problems)


def values_of(name: str) -> Obj:
    return index().helmrelease(name)["spec"]["values"]


def test_traefik_values() -> None:
    values, idx = values_of("traefik"), index()
    assert not [p for p, _ in walk(values) if p and p[-1] == "redirectTo"], (
        "`redirectTo` was removed in chart 34"
    )
    assert dig(values, ("ports", "web", "redirections", "entryPoint")) == {
        "to": "websecure",
        "scheme": "https",
        "permanent": True,
    }
    assert (dig(values, ("ports", "web", "port")), dig(values, ("ports", "web", "hostPort"))) == (
        8000,
        80,
    )
    assert (
        dig(values, ("ports", "websecure", "port")),
        dig(values, ("ports", "websecure", "hostPort")),
    ) == (8443, 443)
    assert dig(values, ("service", "type")) == "ClusterIP"
    assert dig(values, ("providers", "kubernetesIngress", "enabled")) is False
    assert dig(values, ("providers", "kubernetesGateway", "enabled")) is True
    assert dig(values, ("ingressRoute", "dashboard", "enabled")) is False
    assert dig(values, ("updateStrategy", "rollingUpdate", "maxSurge")) == 0, (
        "hostPorts: no surge pod on one node"
    )
    assert (
        dig(values, ("gateway", "enabled")) is True
        and dig(values, ("gateway", "name")) == GATEWAY[1]
    )
    listener = dig(values, ("gateway", "listeners", "websecure")) or {}
    assert (listener.get("protocol"), listener.get("port"), listener.get("hostname")) == (
        "HTTPS",
        8443,
        "*." + DOMAIN_VAR,
    )
    assert listener.get("namespacePolicy") == {"from": "All"}
    certificate = idx.get("Certificate", GATEWAY[0], "wildcard")
    assert certificate is not None
    assert certificate["spec"]["secretName"] in [
        ref.get("name") for ref in listener.get("certificateRefs", [])
    ]
    assert index().helmrelease("traefik")["metadata"]["namespace"] == GATEWAY[0]
    namespace = idx.get("Namespace", None, GATEWAY[0])
    assert (
        namespace is not None
        and namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    )


def test_cert_manager_values() -> None:
    values = values_of("cert-manager")
    assert dig(values, ("crds", "enabled")) is True
    assert dig(values, ("prometheus", "servicemonitor", "enabled")) is True


def test_nfs_provisioner_values() -> None:
    values = values_of("nfs-subdir-external-provisioner")
    assert values["nfs"] == {
        "server": "${NFS_SERVER}",
        "path": "${NFS_PATH}",
        "mountOptions": ["nfsvers=4", "hard", "noatime"],
    }
    expected = {
        "name": "nfs",
        "defaultClass": True,
        "reclaimPolicy": "Delete",
        "archiveOnDelete": True,
        "allowVolumeExpansion": True,
    }
    assert {k: values["storageClass"].get(k) for k in expected} == expected


def test_loki_values() -> None:
    values = values_of("loki")
    loki = values["loki"]
    assert dig(loki, ("limits_config", "retention_period")), (
        "limits_config.retention_period is required for retention"
    )
    assert dig(loki, ("compactor", "retention_enabled")) is True, (
        "without compactor.retention_enabled nothing is deleted"
    )
    assert dig(loki, ("compactor", "delete_request_store")), (
        "retention needs compactor.delete_request_store"
    )
    assert resolve_default(loki["limits_config"]["retention_period"]) == "168h"
    assert (
        values["deploymentMode"] == "SingleBinary"
        and dig(values, ("singleBinary", "replicas")) == 1
    )
    assert dig(loki, ("storage", "type")) == "filesystem"
    schemas = loki["schemaConfig"]["configs"]
    assert any(
        (c["store"], c["object_store"], c["schema"]) == ("tsdb", "filesystem", "v13")
        for c in schemas
    )
    persistence = values["singleBinary"]["persistence"]
    assert (persistence["enabled"], persistence["size"], persistence["storageClass"]) == (
        True,
        "10Gi",
        "nfs",
    )
    for component in ("gateway", "minio", "lokiCanary", "test", "chunksCache", "resultsCache"):
        assert dig(values, (component, "enabled")) is False, f"{component} must be off"
    assert dig(values, ("monitoring", "selfMonitoring", "enabled")) is False
    assert all(dig(values, (target, "replicas")) == 0 for target in ("backend", "read", "write"))


def test_alloy_values() -> None:
    values = values_of("alloy")
    config = dig(values, ("alloy", "configMap", "content")) or ""
    for needle in (
        'loki.source.kubernetes "',
        'discovery.kubernetes "',
        '"spec.nodeName=" +',
        "http://loki.monitoring.svc.cluster.local:3100/loki/api/v1/push",
    ):
        assert needle in config, f"Alloy config lacks {needle}"
    targets = set(re.findall(r'target_label\s*=\s*"([^"]+)"', config))
    assert {"namespace", "pod", "container", "app", "job"} <= targets, targets
    assert dig(values, ("alloy", "mounts", "varlog")) is False
    assert not [p for p, _ in walk(values) if p and p[-1] == "hostPath"], "no hostPath on Talos"


def test_kube_prometheus_stack_values() -> None:
    values, idx = values_of("kube-prometheus-stack"), index()
    spec = values["prometheus"]["prometheusSpec"]
    assert resolve_default(spec["retention"]) == "7d"
    for selector in ("serviceMonitor", "podMonitor", "rule"):
        assert spec[f"{selector}SelectorNilUsesHelmValues"] is False, (
            f"{selector}s of other releases must be selected"
        )
    assert _pvc(spec, "storageSpec") == ("nfs", "10Gi")
    am_spec = values["alertmanager"]["alertmanagerSpec"]
    assert _pvc(am_spec, "storage") == ("nfs", "1Gi")
    assert "monitoring-secrets" in am_spec["secrets"]
    secret = idx.get("Secret", "monitoring", "monitoring-secrets")
    assert secret is not None
    keys = set(secret["stringData"])
    grafana = values["grafana"]
    admin = grafana["admin"]
    assert (
        admin["existingSecret"] == "monitoring-secrets"
        and {admin["userKey"], admin["passwordKey"]} <= keys
    )
    assert (grafana["persistence"]["enabled"], grafana["persistence"]["size"]) == (True, "1Gi")
    sidecar = grafana["sidecar"]["datasources"]
    datasource = idx.get("ConfigMap", "monitoring", "grafana-datasource-loki")
    assert sidecar["enabled"] is True and datasource is not None
    assert (
        datasource["metadata"]["labels"]
        == {sidecar["label"]: sidecar["labelValue"]}
        == {"grafana_datasource": "1"}
    )
    _check_alertmanager_routing(values["alertmanager"]["config"], keys)


def _pvc(spec: Obj, key: str) -> tuple[Any, Any]:
    claim = dig(spec, (key, "volumeClaimTemplate", "spec")) or {}
    return claim.get("storageClassName"), dig(claim, ("resources", "requests", "storage"))


def _check_alertmanager_routing(config: Obj, secret_keys: set[str]) -> None:
    receivers = {r["name"]: r for r in config["receivers"]}
    routes = config["route"]["routes"]

    def receiver_for(matcher: str) -> Obj:
        matching = [r for r in routes if any(matcher in m for m in r.get("matchers", []))]
        assert matching, f"no route matches {matcher}"
        return receivers[matching[0]["receiver"]]

    assert set(receiver_for("Watchdog")) == {"name"}, "Watchdog must go to a null receiver"
    assert set(receivers[config["route"]["receiver"]]) == {"name"}, (
        "the default route must not page"
    )
    for severity, priority in (("critical", "1"), ("warning", "0")):
        pushover = receiver_for(severity).get("pushover_configs") or []
        assert pushover and all(p["priority"] == priority for p in pushover), (
            f"{severity} -> Pushover priority {priority}"
        )
        for conf in pushover:
            assert "user_key" not in conf and "token" not in conf, (
                "read the Pushover credentials from files"
            )
            for field in ("user_key_file", "token_file"):
                directory, _, key = conf[field].rpartition("/")
                assert (
                    directory == "/etc/alertmanager/secrets/monitoring-secrets"
                    and key in secret_keys
                ), conf[field]


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


# --------------------------------------------------------------------------------------------
# Self-tests of the detectors: each must catch what it is meant to catch.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("detector", "text", "caught"),
    [
        (literal_hosts, "url: https://grafana.example.com/", True),
        (literal_hosts, "server: nas.home.arpa", True),
        (literal_hosts, "host: whoami.catinthehack.ca", True),
        (literal_hosts, "url: https://charts.jetstack.io", False),
        (literal_hosts, "url: http://loki.monitoring.svc.cluster.local:3100", False),
        (literal_hosts, "loki.source.kubernetes and grafana.ini", False),
        (literal_hosts, "hostnames: [grafana.${CLUSTER_DOMAIN}]", False),
        (literal_ipv4s, "server: 192.168.20.20", True),
        (literal_ipv4s, "dns: 1.1.1.1", True),
        (literal_ipv4s, "version: 1.19.3", False),
        (literal_emails, "email: admin@example.org", True),
        (literal_emails, "email: ${ACME_EMAIL}", False),
        (
            secret_like_literals,
            "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ",
            True,
        ),
        (secret_like_literals, "token: dop_v1_" + "0a" * 32, True),
        (secret_like_literals, "token: azGDORePK8gMaC0QOYAMyEEuzJnyUi", True),
        (secret_like_literals, "commit: 0123456789abcdef0123456789abcdef01234567", False),
        (secret_like_literals, "name: kube-prometheus-stack-alertmanager", False),
        (bad_substitutions, "value: ${INTERVAL / 1000}", True),
        (bad_substitutions, "value: ${lower-case}", True),
        (bad_substitutions, "value: ${VAR:=default} and $${ESCAPED} and {{ $labels.x }}", False),
    ],
)
def test_detectors(detector: Callable[[str], list[str]], text: str, caught: bool) -> None:
    assert bool(detector(text)) is caught, detector(text)


def test_variable_and_resource_helpers() -> None:
    assert variable_refs("a ${FOO} b ${BAR:=x} c $${BAZ}") == [("FOO", None), ("BAR", "x")]
    assert resolve_default("${X:=7d}") == "7d" and resolve_default("${X}") == "${X}"
    assert resources_problems({"requests": {"cpu": "1", "memory": "1Mi"}}) == ["no limits"]
    assert not resources_problems(
        {"requests": {"cpu": "1", "memory": "1Mi"}, "limits": {"cpu": "1", "memory": "1Mi"}}
    )
    assert is_storage_request({"requests": {"storage": "1Gi"}})
    assert inline_credentials({"env": [{"name": "DB_PASSWORD", "value": "hunter2"}]})
    assert not inline_credentials({"env": [{"name": "DB_PASSWORD", "valueFrom": {}}]})
    assert inline_credentials({"pushover": {"token": "abc"}})
    assert not inline_credentials({"pushover": {"token": "${PUSHOVER_API_TOKEN}"}})
