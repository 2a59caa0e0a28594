"""The program against Talos's own rules: Kubernetes range per Talos minor, Image Factory's
extension catalogue, and disk encryption only where the TPM key can be sealed."""

from __future__ import annotations

import copy
from typing import Any

import pulumi
import pytest
import yaml

from harness.engine import Program, ProgramRun
from harness.environment import committed_config
from harness.tokens import MACHINE_CONFIGURATION, SCHEMATIC
from settings import ConfigError, parse_settings
from settings.compatibility import KUBERNETES_BY_TALOS_MINOR
from tests.talos_schemas import TALOS_MINORS

CATALOGUE = "talos:imageFactory/getExtensionsVersions:getExtensionsVersions"


def config_with(**cluster: Any) -> dict[str, Any]:
    config = copy.deepcopy(committed_config())
    config["cluster"].update(cluster)
    return config


def schematic_extensions(run: ProgramRun) -> list[str]:
    document = yaml.safe_load(run.one(SCHEMATIC, "talos-schematic").inputs["schematic"])
    return document["customization"]["systemExtensions"]["officialExtensions"]


# --- 5. Kubernetes version: explicit, inside the configured Talos minor's range ---------------


def test_the_machine_configs_carry_the_configured_kubernetes_version(program: Program) -> None:
    run = program(committed_config())
    invocations = run.invoked(MACHINE_CONFIGURATION)
    assert invocations
    # Never left to the provider, whose built-in default (1.36.0) a Talos 1.12 node rejects.
    assert {invocation.args.get("kubernetesVersion") for invocation in invocations} == {"1.35.0"}


def test_a_talos_minor_bump_does_not_move_kubernetes(program: Program) -> None:
    run = program(config_with(talosVersion="v1.13.0"))
    assert {i.args.get("kubernetesVersion") for i in run.invoked(MACHINE_CONFIGURATION)} == {
        "1.35.0"
    }


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


# --- 6. Extensions: real names, checked against Image Factory's catalogue ---------------------


def test_without_an_image_section_the_default_extensions_are_used(program: Program) -> None:
    config = committed_config()
    del config["image"]
    run = program(config)
    assert schematic_extensions(run) == ["siderolabs/nfs-utils", "siderolabs/qemu-guest-agent"]


def test_the_catalogue_of_the_configured_talos_version_is_asked(program: Program) -> None:
    run = program(committed_config())
    (catalogue,) = run.invoked(CATALOGUE)
    # Unfiltered: the closest names to a wrong one come from the whole catalogue.
    assert catalogue.args == {"talosVersion": "v1.12.4"}


def test_an_unknown_extension_stops_the_run_before_anything_is_registered(
    program: Program,
) -> None:
    config = committed_config()
    config["image"]["extensions"] = ["siderolabs/qemu-guest-agent", "siderolabs/nfs-mount"]
    run = program(config, expect_error=True)
    assert isinstance(run.error, pulumi.RunError), run.error
    message = str(run.error)
    assert len(message.splitlines()) == 1, message
    for fragment in (
        "homelab:image.extensions[1] = 'siderolabs/nfs-mount'",
        "not in Image Factory's extension catalogue for Talos v1.12.4",
        "Fix: use siderolabs/nfs-utils",
        "https://factory.talos.dev/version/v1.12.4/extensions/official",
    ):
        assert fragment in message, f"{fragment!r} not in {message!r}"
    # Not even the schematic, the ISOs or the VMs it would feed.
    assert run.registrations == [], [r.name for r in run.registrations]


def test_an_explicit_schematic_id_needs_no_catalogue(program: Program) -> None:
    config = committed_config()
    config["image"]["schematicId"] = "b" * 64
    run = program(config)
    assert run.invoked(CATALOGUE) == []
    assert run.of_type(SCHEMATIC) == []


# --- 7. Disk encryption needs the secure-boot image -------------------------------------------


def test_disk_encryption_without_secure_boot_is_rejected_and_without_encryption_allowed() -> None:
    config = committed_config()
    config["features"].update(secureBoot=False, diskEncryption=True)
    with pytest.raises(ConfigError, match=r"homelab:features\.diskEncryption: true"):
        parse_settings(config, {})
    config["features"]["diskEncryption"] = False
    assert parse_settings(config, {}).features.secure_boot is False
