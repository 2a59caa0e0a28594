"""The program against Talos's own rules: Kubernetes range per Talos minor, Image Factory's
extension catalogue, and disk encryption only where the TPM key can be sealed."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from harness.engine import ProgramRun
from harness.environment import committed_config
from settings import ConfigError, parse_settings
from settings.compatibility import KUBERNETES_BY_TALOS_MINOR
from tests.talos_schemas import TALOS_MINORS

Program = Callable[..., ProgramRun]
CONFIGURATION = "talos:machine/getConfiguration:getConfiguration"


def config_with(**cluster: Any) -> dict[str, Any]:
    config = copy.deepcopy(committed_config())
    config["cluster"].update(cluster)
    return config


# --- 5. Kubernetes version: explicit, inside the configured Talos minor's range ---------------


def test_the_machine_configs_carry_the_configured_kubernetes_version(program: Program) -> None:
    run = program(committed_config())
    invocations = run.invoked(CONFIGURATION)
    assert invocations
    # Never left to the provider, whose built-in default (1.36.0) a Talos 1.12 node rejects.
    assert {invocation.args.get("kubernetesVersion") for invocation in invocations} == {"1.35.0"}


def test_a_talos_minor_bump_does_not_move_kubernetes(program: Program) -> None:
    run = program(config_with(talosVersion="v1.13.0"))
    assert {i.args.get("kubernetesVersion") for i in run.invoked(CONFIGURATION)} == {"1.35.0"}


@pytest.mark.parametrize(
    ("talos", "kubernetes", "admitted"),
    [
        ("v1.12.4", "v1.30.0", True),
        ("v1.12.4", "1.35.98", True),
        ("v1.12.4", "v1.29.15", False),
        # The maximum is exclusive (kubernetes_version.go: core >= max is "too new").
        ("v1.12.4", "v1.35.99", False),
        ("v1.12.4", "v1.36.0", False),
        ("v1.13.0", "v1.31.0", True),
        ("v1.13.0", "v1.36.0", True),
        ("v1.13.0", "v1.30.14", False),
        ("v1.13.0", "v1.37.0", False),
    ],
)
def test_the_kubernetes_range_is_the_talos_minors_own(
    talos: str, kubernetes: str, admitted: bool
) -> None:
    config = config_with(talosVersion=talos, kubernetesVersion=kubernetes)
    if admitted:
        assert parse_settings(config, {}).cluster.kubernetes_version == kubernetes
    else:
        with pytest.raises(ConfigError, match=r"homelab:cluster\.kubernetesVersion"):
            parse_settings(config, {})


def test_every_talos_minor_the_patches_are_checked_against_has_a_kubernetes_range() -> None:
    assert {f"v{major}.{minor}" for major, minor in KUBERNETES_BY_TALOS_MINOR} == set(TALOS_MINORS)


# --- 7. Disk encryption needs the secure-boot image -------------------------------------------


def test_disk_encryption_without_secure_boot_is_rejected_and_without_encryption_allowed() -> None:
    config = committed_config()
    config["features"].update(secureBoot=False, diskEncryption=True)
    with pytest.raises(ConfigError, match=r"homelab:features\.diskEncryption: true"):
        parse_settings(config, {})
    config["features"]["diskEncryption"] = False
    assert parse_settings(config, {}).features.secure_boot is False
