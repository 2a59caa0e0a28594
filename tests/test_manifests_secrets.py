"""Secrets and literals: secret variables only in Secrets, no inline credentials, no literal
hosts, IPs, e-mails or secret material; the detectors catch what they are meant to."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import default_settings

from tests.manifests.detectors import (
    CREDENTIAL_ENV,
    CREDENTIAL_KEYS,
    bad_substitutions,
    is_storage_request,
    literal_emails,
    literal_hosts,
    literal_ipv4s,
    resources_problems,
    secret_like_literals,
    variable_refs,
)
from tests.manifests.tree import (
    ROOT,
    WHOLE_VAR_REF,
    declared_variables,
    ident,
    index,
    layered_objects,
    resolve_default,
    text_files,
    walk,
)


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
    # A Git source pinned to a commit is pinned by a 40-hex SHA: that is no secret.
    pinned_commits = {
        r["spec"]["ref"]["commit"]
        for r in idx.of_kind("GitRepository")
        if r["spec"].get("ref", {}).get("commit")
    }
    collection = SecretsCollection()
    with default_settings():
        for path in text_files():
            collection.scan_file(str(path))
    for filename, secret in collection:
        if secret.type == "Secret Keyword" and secret.secret_value in references:
            continue
        if secret.type == "Hex High Entropy String" and secret.secret_value in pinned_commits:
            continue
        found.setdefault(str(Path(filename).resolve().relative_to(ROOT)), []).append(
            f"{secret.type} line {secret.line_number}"
        )
    assert not found, f"possible secrets: {found}"


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
    assert not inline_credentials({"pushover": {"token": "${quote}${PUSHOVER_API_TOKEN}${quote}"}})
