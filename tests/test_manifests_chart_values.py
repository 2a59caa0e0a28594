"""Chart values: resources for every container and the per-chart settings users rely on."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.manifests.detectors import is_storage_request, resources_problems
from tests.manifests.tree import (
    DOMAIN_VAR,
    GATEWAY,
    REQUIRED_RESOURCES,
    Obj,
    dig,
    index,
    quoted,
    resolve_default,
    walk,
)

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
    # The documented port-forward to 8080 shows the dashboard only if something routes to it
    # there: the chart's IngressRoute on the `traefik` entry point (port 8080), kept unexposed.
    assert dig(values, ("ingressRoute", "dashboard", "enabled")) is True
    assert dig(values, ("ingressRoute", "dashboard", "entryPoints")) == ["traefik"]
    assert dig(values, ("ports", "traefik", "hostPort")) is None
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
        quoted("*." + DOMAIN_VAR),
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
        "server": quoted("${NFS_SERVER}"),
        "path": quoted("${NFS_PATH}"),
        "mountOptions": ["nfsvers=4", "hard", "noatime"],
    }
    expected = {
        "name": "nfs",
        "defaultClass": True,
        "reclaimPolicy": "Delete",
        "archiveOnDelete": True,
        "allowVolumeExpansion": False,  # the provisioner has no resizer
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
    host_paths = [v for p, v in walk(values) if p and p[-1] == "hostPath"]
    assert all(not str(v.get("path")).startswith("/var/log") for v in host_paths), (
        "Talos has no /var/log to read: logs come through the API"
    )
    # Read positions must outlive the container, or every restart re-reads every log.
    storage = dig(values, ("alloy", "storagePath"))
    mounts = {m["name"]: m["mountPath"] for m in dig(values, ("alloy", "mounts", "extra")) or []}
    volumes = {v["name"]: v for v in dig(values, ("controller", "volumes", "extra")) or []}
    assert storage and not storage.startswith("/tmp")
    assert [name for name, path in mounts.items() if path == storage] == ["alloy-data"]
    assert volumes["alloy-data"]["hostPath"]["path"] == storage


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
    # Flux posts alerts without an end time: a resolved push would follow every error.
    flux = receiver_for("reportingcontroller")
    assert routes.index(next(r for r in routes if r["receiver"] == flux["name"])) < routes.index(
        next(r for r in routes if any("critical" in m for m in r.get("matchers", [])))
    ), "Flux's route must come before the severity routes"
    assert [p["send_resolved"] for p in flux["pushover_configs"]] == [False]
    assert "exported_namespace" in config["route"]["group_by"]
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


@pytest.mark.parametrize("release", ["kyverno", "prometheus-operator-crds"])
def test_crds_outlive_their_release(release: str) -> None:
    """Pruning or uninstalling a release must not delete its CRDs, and every object with them
    (cert-manager's `crds.keep` and traefik-crds' `deleteOnUninstall` are checked above)."""
    annotations = dig(values_of(release), ("crds", "annotations")) or {}
    assert annotations.get("helm.sh/resource-policy") == "keep"


def test_traefik_crds_and_cert_manager_keep_their_crds() -> None:
    assert dig(values_of("traefik-crds"), ("deleteOnUninstall",)) is False
    assert dig(values_of("cert-manager"), ("crds", "keep")) is True
