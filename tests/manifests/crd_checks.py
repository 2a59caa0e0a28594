"""Structural checks of each custom resource kind used under kubernetes/, one function per kind."""

from __future__ import annotations

import re
from collections.abc import Callable

from settings.backup import BACKUP_NAMESPACE, ETCD_BACKUP_ROLE
from tests.manifests.tree import (
    CRD_POLICY_EXCEPTIONS,
    DOMAIN_VAR,
    EXPECTED_CHARTS,
    GATEWAY,
    QUOTE,
    Index,
    Obj,
    dig,
    quoted,
    resolve_default,
)

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
    problems += _remediation_problems(spec, name)
    for dep in spec.get("dependsOn", []):
        if (
            idx.get("HelmRelease", dep.get("namespace", obj["metadata"]["namespace"]), dep["name"])
            is None
        ):
            problems.append(f"dependsOn {dep} does not resolve")
    if not isinstance(spec.get("values"), dict):
        problems.append("no values")
    return problems


def _remediation_problems(spec: Obj, name: str) -> list[str]:
    problems = []
    # A first install that fails its last retry stalls until `flux reconcile --reset`.
    if dig(spec, ("install", "remediation", "retries")) != -1:
        problems.append("install.remediation.retries must be -1 (retry without limit)")
    for phase in ("install", "upgrade"):
        retries = dig(spec, (phase, "remediation", "retries"))
        if not isinstance(retries, int) or retries == 0:
            problems.append(f"{phase}.remediation.retries must be set (non-zero)")
        want_crds = CRD_POLICY_EXCEPTIONS.get(name, "CreateReplace")
        if dig(spec, (phase, "crds")) != want_crds:
            problems.append(f"{phase}.crds must be {want_crds}")
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
        # The release commit (the tag is an annotated tag object), with the tag beside it so
        # Flux clones one branch only (issue 11).
        if (ref.get("tag"), ref.get("commit")) != (
            "v1.4.1",
            "477d172e6ac5eccb82b65781ddb8f924afec4170",
        ):
            problems.append("gateway-api must be pinned to the v1.4.1 tag and its release commit")
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
    if acme.get("email") != quoted("${ACME_EMAIL}"):
        problems.append("email must be the quoted ${ACME_EMAIL}")
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
        if set(spec.get("dnsNames", [])) != {quoted(DOMAIN_VAR), quoted("*." + DOMAIN_VAR)}:
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
    if not hostnames or not all(
        h.startswith(QUOTE) and h.endswith("." + DOMAIN_VAR + QUOTE) for h in hostnames
    ):
        problems.append(f"hostnames {hostnames} must be {quoted('<name>.' + DOMAIN_VAR)}")
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
    # Kyverno keeps its own namespace out of its webhooks and scans (chart value
    # config.excludeKyvernoNamespace, default true): a reference to its images checks nothing.
    if refs != {"ghcr.io/fluxcd/*"}:
        problems.append(f"imageReferences {sorted(refs)} must be exactly ghcr.io/fluxcd/*")
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
        # The scrape renames the certificate's namespace to exported_namespace.
        if cert and "$labels.namespace" in str(cert.get("annotations")):
            problems.append("CertManagerCertExpirySoon: name $labels.exported_namespace")
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


def check_servicemonitor(obj: Obj, _idx: Index) -> list[str]:
    spec = obj["spec"]
    if not spec.get("selector") or not spec.get("endpoints"):
        return ["selector and endpoints are required"]
    return []


def check_talos_serviceaccount(obj: Obj, _idx: Index) -> list[str]:
    """Talos' CRD has spec.roles only; its controller refuses roles the machine config does not
    allow (siderolabs/talos internal/app/machined/pkg/controllers/kubeaccess/serviceaccount/
    crd_controller.go), so they must be exactly those."""
    problems = []
    if set(obj["spec"]) != {"roles"}:
        problems.append(f"spec has {sorted(obj['spec'])}; Talos' CRD defines only roles")
    if obj["spec"].get("roles") != [ETCD_BACKUP_ROLE]:
        problems.append(f"roles must be [{ETCD_BACKUP_ROLE}] (the only role Talos allows)")
    if obj["metadata"]["namespace"] != BACKUP_NAMESPACE:
        problems.append(f"must live in {BACKUP_NAMESPACE}, the namespace Talos allows")
    return problems


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
