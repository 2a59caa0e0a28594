"""Detectors of what must not be written literally in kubernetes/ (hosts, IPs, e-mails, secrets,
bad substitutions) and of incomplete resources blocks; self-tested in test_manifests_secrets.py."""

from __future__ import annotations

import math
import re
from typing import Any

from tests.manifests.tree import VAR_REF

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
