"""Every kind of bad input stops the program with one message (key, value, fix) and no resource."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pulumi
import pytest

from harness.engine import ProgramRun
from harness.environment import (
    committed_config,
    ha_config,
    new_age_key,
    secrets_document,
)

Config = dict[str, Any]


def node(config: Config, index: int = 0) -> dict[str, Any]:
    return config["nodes"][index]


def with_nodes(count_cp: int, count_workers: int, vip: bool = True) -> Config:
    config = ha_config()
    cps = [n for n in config["nodes"] if n["role"] == "controlplane"]
    workers = [n for n in config["nodes"] if n["role"] == "worker"]
    extra_cps = [
        {
            **cps[0],
            "name": f"talos-cp-{i}",
            "ip": f"192.168.20.12{i}",
            "mac": f"BC:24:11:CA:FE:2{i}",
        }
        for i in range(len(cps) + 1, count_cp + 1)
    ]
    config["nodes"] = (cps + extra_cps)[:count_cp] + workers[:count_workers]
    if not vip:
        del config["network"]["vip"]
    return config


def edit(
    change: Callable[[Config], object], base: Callable[[], Config] = committed_config
) -> Config:
    config = copy.deepcopy(base())
    change(config)
    return config


# (id, config, fragments the one message must contain: key, value, fix)
CASES: list[tuple[str, Config, list[str]]] = [
    (
        "malformed-node-ip",
        edit(lambda c: node(c).update(ip="192.168.20.300")),
        ["homelab:nodes[0].ip = '192.168.20.300'", "is not an IPv4 address", "Fix: write four"],
    ),
    (
        "malformed-cidr",
        edit(lambda c: c["network"].update(cidr="192.168.20.0/33")),
        ["homelab:network.cidr = '192.168.20.0/33'", "not an IPv4 network", "Fix:"],
    ),
    (
        "cidr-with-host-bits",
        edit(lambda c: c["network"].update(cidr="192.168.20.5/24")),
        [
            "homelab:network.cidr = '192.168.20.5/24'",
            "Fix: use the network address 192.168.20.0/24",
        ],
    ),
    (
        "malformed-mac",
        edit(lambda c: node(c).update(mac="BC:24:11:CA:FE")),
        ["homelab:nodes[0].mac = 'BC:24:11:CA:FE'", "not a MAC address", "XX:XX:XX:XX:XX:XX"],
    ),
    (
        "node-ip-outside-cidr",
        edit(lambda c: node(c).update(ip="192.168.30.5")),
        ["homelab:nodes[0].ip = '192.168.30.5'", "inside homelab:network.cidr (192.168.20.0/24)"],
    ),
    (
        "node-ip-is-network-address",
        edit(lambda c: node(c).update(ip="192.168.20.0")),
        ["homelab:nodes[0].ip = '192.168.20.0'", "not a host address"],
    ),
    (
        "gateway-outside-cidr",
        edit(lambda c: c["network"].update(gateway="10.0.0.1")),
        ["homelab:network.gateway = '10.0.0.1'", "inside homelab:network.cidr", "Fix:"],
    ),
    (
        "node-uses-gateway",
        edit(lambda c: node(c).update(ip="192.168.20.1")),
        ["homelab:nodes[0].ip = '192.168.20.1'", "homelab:network.gateway", "its own free address"],
    ),
    (
        "node-uses-vip",
        edit(lambda c: node(c, 1).update(ip="192.168.20.99"), ha_config),
        ["homelab:nodes[1].ip = '192.168.20.99'", "homelab:network.vip", "its own free address"],
    ),
    (
        "vip-outside-cidr",
        edit(lambda c: c["network"].update(vip="10.1.1.1"), ha_config),
        ["homelab:network.vip = '10.1.1.1'", "inside homelab:network.cidr"],
    ),
    (
        "duplicate-name",
        edit(lambda c: node(c, 1).update(name="talos-cp-1"), ha_config),
        ["homelab:nodes[0] = 'talos-cp-1'", "shares its name", "its own name"],
    ),
    (
        "duplicate-ip",
        edit(lambda c: node(c, 2).update(ip="192.168.20.101"), ha_config),
        ["homelab:nodes[0] = '192.168.20.101'", "shares its IP address"],
    ),
    (
        "duplicate-mac-any-case",
        edit(lambda c: node(c, 4).update(mac="bc:24:11:ca:fe:11"), ha_config),
        ["homelab:nodes[3] = 'BC:24:11:CA:FE:11'", "shares its MAC address"],
    ),
    (
        "even-control-planes",
        with_nodes(2, 2),
        ["homelab:nodes = '2 control planes'", "odd number", "role: controlplane"],
    ),
    (
        "no-control-plane",
        edit(lambda c: node(c).update(role="worker")),
        ["homelab:nodes = '0 control planes'", "odd number"],
    ),
    (
        "several-control-planes-without-vip",
        with_nodes(3, 0, vip=False),
        ["homelab:network.vip = None", "3 control planes need one shared API address", "vip"],
    ),
    (
        "talos-version-format",
        edit(lambda c: c["cluster"].update(talosVersion="1.12.4")),
        ["homelab:cluster.talosVersion = '1.12.4'", "Fix: write it as vX.Y.Z"],
    ),
    (
        "talos-version-too-old",
        edit(lambda c: c["cluster"].update(talosVersion="v1.11.5")),
        ["homelab:cluster.talosVersion = 'v1.11.5'", "Fix: use v1.12.0 or newer"],
    ),
    (
        "kubernetes-version-unset",
        edit(lambda c: c["cluster"].pop("kubernetesVersion", None)),
        [
            "homelab:cluster.kubernetesVersion = None",
            "is required",
            "Kubernetes 1.36.0",
            "Fix: set it to a Kubernetes release from 1.30.0 to 1.35.x",
        ],
    ),
    (
        "kubernetes-version-format",
        edit(lambda c: c["cluster"].update(kubernetesVersion="1.35")),
        ["homelab:cluster.kubernetesVersion = '1.35'", "not a Kubernetes release", "vX.Y.Z"],
    ),
    (
        "kubernetes-too-new-for-talos-1.12",
        edit(lambda c: c["cluster"].update(kubernetesVersion="v1.36.0")),
        [
            "homelab:cluster.kubernetesVersion = 'v1.36.0'",
            "outside the Kubernetes range Talos v1.12.4 (homelab:cluster.talosVersion) supports "
            "(1.30.0 to 1.35.x)",
            "Fix: pick a Kubernetes release from 1.30.0 to 1.35.x",
        ],
    ),
    (
        "kubernetes-too-old-for-talos-1.13",
        edit(lambda c: c["cluster"].update(talosVersion="v1.13.0", kubernetesVersion="1.30.14")),
        ["homelab:cluster.kubernetesVersion = '1.30.14'", "Talos v1.13.0", "1.31.0 to 1.36.x"],
    ),
    (
        "talos-minor-without-kubernetes-range",
        edit(lambda c: c["cluster"].update(talosVersion="v1.14.0")),
        [
            "homelab:cluster.talosVersion = 'v1.14.0'",
            "(known: 1.12, 1.13)",
            "settings/compatibility.py",
        ],
    ),
    (
        "disk-encryption-without-secure-boot",
        edit(lambda c: c["features"].update(secureBoot=False)),
        [
            "homelab:features.secureBoot = False",
            "homelab:features.diskEncryption: true",
            "PCR signing key",
            "Fix: set homelab:features.secureBoot: true, or homelab:features.diskEncryption: false",
        ],
    ),
    (
        "schematic-id",
        edit(lambda c: c["image"].update(schematicId="abc123")),
        ["homelab:image.schematicId = 'abc123'", "64 lowercase hex", "Fix:"],
    ),
    (
        "too-few-cores",
        edit(lambda c: node(c).update(cores=0)),
        ["homelab:nodes[0].cores = 0", "out of range", "from 1 to 16"],
    ),
    (
        "too-many-cores",
        edit(lambda c: node(c).update(cores=17)),
        ["homelab:nodes[0].cores = 17", "from 1 to 16"],
    ),
    (
        "too-little-memory",
        edit(lambda c: node(c).update(memory=1024)),
        ["homelab:nodes[0].memory = 1024", "at least 2048"],
    ),
    (
        "too-small-disk",
        edit(lambda c: node(c).update(disk=5)),
        ["homelab:nodes[0].disk = 5", "at least 10"],
    ),
    (
        "endpoint-not-https",
        edit(lambda c: c["proxmox"].update(endpoint="http://pve:8006/")),
        ["homelab:proxmox.endpoint = 'http://pve:8006/'", "https://", "Fix: write it as https://"],
    ),
    (
        "misspelt-key",
        edit(lambda c: node(c).update(memroy=4096)),
        ["homelab:nodes[0].memroy = 4096", "not a known setting", "memory"],
    ),
    (
        "unknown-role",
        edit(lambda c: node(c).update(role="master")),
        ["homelab:nodes[0].role = 'master'", "use controlplane or worker"],
    ),
    (
        "missing-required-key",
        edit(lambda c: node(c).pop("mac")),
        ["homelab:nodes[0].mac = None", "is required"],
    ),
    (
        "missing-top-level-key",
        edit(lambda c: c.pop("network")),
        [
            "homelab:network = None",
            "is required",
            "Fix: set homelab:network in Pulumi.homelab.yaml",
        ],
    ),
    (
        "derived-cluster-setting",
        edit(lambda c: c["clusterSettings"].update(CLUSTER_NAME="x")),
        ["homelab:clusterSettings.CLUSTER_NAME = 'x'", "remove it from clusterSettings"],
    ),
    (
        "git-url-scheme",
        edit(lambda c: c["gitops"].update(repository="git@github.com:me/repo.git")),
        ["homelab:gitops.repository = 'git@github.com:me/repo.git'", "ssh:// or https://"],
    ),
    (
        "ssh-without-known-hosts",
        edit(lambda c: c["gitops"].pop("knownHosts")),
        ["homelab:gitops.knownHosts = None", "ssh-keyscan"],
    ),
]


def assert_clean_failure(run: ProgramRun, fragments: list[str]) -> None:
    assert isinstance(run.error, pulumi.RunError), run.error
    message = str(run.error)
    assert len(message.splitlines()) == 1, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert run.registrations == [], [r.name for r in run.registrations]


@pytest.mark.parametrize(("config", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config_fails_cleanly_before_any_resource(
    program: Callable[..., ProgramRun], config: Config, fragments: list[str]
) -> None:
    assert_clean_failure(program(config, expect_error=True), fragments)


def test_missing_secrets_file(program: Callable[..., ProgramRun], secrets_file: Path) -> None:
    secrets_file.unlink()
    run = program(committed_config(), expect_error=True)
    assert_clean_failure(run, ["homelab:secretsFile", "does not exist", "sops encrypt"])


def test_missing_sops_binary(
    program: Callable[..., ProgramRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    run = program(committed_config(), expect_error=True)
    assert_clean_failure(run, ["`sops` binary is not on PATH", "mise install"])


def test_failed_decryption(
    program: Callable[..., ProgramRun], write_secrets: Callable[..., None], age_key: Path
) -> None:
    # Encrypted by the real sops to someone else's key: the test's key cannot decrypt it.
    other = new_age_key().recipient
    write_secrets(secrets_document(), recipient=other)
    run = program(committed_config(), expect_error=True)
    assert_clean_failure(
        run,
        [
            "sops could not decrypt it (Failed to get the data key",
            # sops's own reason, not only its last line "(but none were.)"
            "identity did not match any of the recipients",
            other,
            f"SOPS_AGE_KEY_FILE (or homelab:gitops.ageKeyFile, now {age_key})",
        ],
    )


def test_missing_secret_key(
    program: Callable[..., ProgramRun], write_secrets: Callable[[Mapping[str, Any]], None]
) -> None:
    write_secrets({"clusterSecrets": {}})
    run = program(committed_config(), expect_error=True)
    assert_clean_failure(run, [":proxmox.apiToken = None", "missing", "sops:edit"])


def test_malformed_token_is_reported_without_its_value(
    program: Callable[..., ProgramRun], write_secrets: Callable[[Mapping[str, Any]], None]
) -> None:
    write_secrets({"proxmox": {"apiToken": "hunter2-not-a-token"}})
    run = program(committed_config(), expect_error=True)
    assert_clean_failure(run, [":proxmox.apiToken = '<redacted>'", "USER@REALM!TOKENID=UUID"])
    assert "hunter2" not in str(run.error)


def test_https_repository_needs_a_token(program: Callable[..., ProgramRun]) -> None:
    config = edit(lambda c: c["gitops"].update(repository="https://github.com/example/homelab.git"))
    run = program(config, expect_error=True)
    assert_clean_failure(run, [":git.httpsToken = None", "missing"])
