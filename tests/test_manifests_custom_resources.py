"""Custom resources: served API versions and per-kind structure; the expected objects exist."""

from __future__ import annotations

import json
import re

from tests.manifests.crd_checks import CRD_CHECKS
from tests.manifests.tree import (
    CLUSTER_SCOPED_CRD_KINDS,
    CRD_API_VERSIONS,
    CRD_GROUP_LAYER,
    EXPECTED_CHARTS,
    KUBE,
    ROOT,
    api_group,
    ident,
    index,
)


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


def test_renovate_updates_the_gateway_api_commit_with_its_tag() -> None:
    """renovate.json's custom manager must match the pin as written, capturing the release
    commit and the tag it belongs to (Renovate's named groups, in Python syntax)."""
    config = json.loads((ROOT / "renovate.json").read_text())
    (manager,) = [
        m
        for m in config["customManagers"]
        if m.get("depNameTemplate") == "kubernetes-sigs/gateway-api"
    ]
    text = (KUBE / "crds" / "gateway-api" / "gitrepository.yaml").read_text()
    found = [
        match.groupdict()
        for pattern in manager["matchStrings"]
        if (match := re.search(pattern.replace("(?<", "(?P<"), text))
    ]
    assert found == [
        {
            "currentDigest": "477d172e6ac5eccb82b65781ddb8f924afec4170",
            "currentValue": "v1.4.1",
        }
    ]
