"""Talos machine secrets escrow, with the real `sops` and a pyrage-generated age key: the export
is encrypted and holds exactly the machine secrets; a fresh state adopts the file; a mismatch
stops the run."""

from __future__ import annotations

import json
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from harness import providers
from harness.engine import ProgramRun, plain_strings
from harness.tokens import (
    APPLY,
    CLIENT_CONFIGURATION,
    COMMAND,
    DEPLOY_KEY,
    MACHINE_CONFIGURATION,
    SECRET,
    SECRETS,
)
from tests.real_sops import decrypt, encrypt, run

# What the harness' Secrets stand-in generates, in `talosctl gen secrets` form.
STATE_BUNDLE = {
    "cluster": {"id": "cluster-id", "secret": "cluster-secret"},  # pragma: allowlist secret
    "secrets": {
        "bootstraptoken": "abc.def",
        "secretboxencryptionsecret": "c2Vj",  # pragma: allowlist secret
    },
    "trustdinfo": {"token": "trustd.token"},
    "certs": {
        "etcd": {"crt": "Y2VydA==", "key": "a2V5"},
        "k8s": {"crt": "Y2VydA==", "key": "a2V5"},
        "k8saggregator": {"crt": "Y2VydA==", "key": "a2V5"},
        "k8sserviceaccount": {"key": "a2V5"},
        "os": {"crt": "Y2VydA==", "key": "a2V5"},
    },
}


def other_bundle() -> dict[str, Any]:
    """Another cluster's secrets: every value differs from the state's."""
    return json.loads(
        json.dumps(STATE_BUNDLE)
        .replace("cluster-secret", "escrowed-secret")
        .replace("Y2VydA==", "ZXNjcm93ZWQtY2VydA==")
    )


def run_escrow_command(run_: ProgramRun, workdir: Path, name: str = "talos-secrets-escrow") -> Path:
    """Do what pulumi-command does on create: run the command in a shell, stdin piped in."""
    escrow = run_.one(COMMAND, name)
    subprocess.run(
        ["/bin/sh", "-c", escrow.inputs["create"]],
        input=escrow.inputs["stdin"],
        text=True,
        check=True,
        cwd=workdir,
    )
    return workdir / escrow.inputs["create"].split("--output ")[1].split()[0]


def test_the_export_is_encrypted_and_holds_exactly_the_machine_secrets(workdir: Path) -> None:
    result = run(workdir)
    escrow = result.one(COMMAND, "talos-secrets-escrow")
    # The plaintext reaches sops only through stdin, as a Pulumi secret.
    assert "/dev/stdin" in escrow.inputs["create"] and "--output" in escrow.inputs["create"]
    assert escrow.inputs["stdin"] not in list(plain_strings(escrow.raw_inputs))
    target = run_escrow_command(result, workdir)
    text = target.read_text()
    assert "sops:" in text and "ENC[AES256_GCM" in text
    assert "cluster-secret" not in text and "trustd.token" not in text
    assert decrypt(target) == STATE_BUNDLE
    assert sorted(p.name for p in workdir.iterdir() if "talos-secrets" in p.name) == [
        "talos-secrets.enc.yaml"
    ]


def test_a_fresh_state_adopts_the_escrowed_secrets(workdir: Path) -> None:
    encrypt(workdir / "talos-secrets.enc.yaml", other_bundle())
    result = run(workdir, {"adoptSecrets": True})
    (secrets,) = result.of_type(SECRETS)
    # Imported, not created: the engine reads the file instead of generating a new CA.
    assert secrets.import_id.endswith("talos-secrets.yaml")
    assert "talosVersion" in secrets.ignore_changes
    escrowed_os_ca = other_bundle()["certs"]["os"]["crt"]
    for invoke in result.invoked(MACHINE_CONFIGURATION):
        assert (
            invoke.args["machineSecrets"]["cluster"]["secret"]
            == "escrowed-secret"  # pragma: allowlist secret
        )
        # The import's v1.3 marker is reconciled to the configured Talos version.
        assert invoke.args["talosVersion"] == "v1.12.4"
    (client,) = result.invoked(CLIENT_CONFIGURATION)
    assert client.args["clientConfiguration"]["caCertificate"] == escrowed_os_ca
    for apply in result.of_type(APPLY):
        assert apply.inputs["clientConfiguration"]["caCertificate"] == escrowed_os_ca
    # Re-escrowing the adopted secrets writes the same bundle back.
    assert decrypt(run_escrow_command(result, workdir)) == other_bundle()


def test_adoption_never_writes_the_plaintext_secrets_to_a_file(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import reads a named pipe: while the provider reads it, no regular file outside
    `*.enc.*` holds a secret value, in the working directory or the temp directory."""
    encrypt(workdir / "talos-secrets.enc.yaml", other_bundle())
    # Whatever the program would put in a temp dir lands where the test can see it.
    private_tmp = workdir.parent / f"{workdir.name}-tmp"
    private_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(private_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    seen: list[tuple[bool, int, list[str]]] = []
    read = providers._imported_machine_secrets

    def observed(path: str) -> dict[str, Any]:
        holding = [
            str(found)
            for root in (workdir, private_tmp)
            for found in root.rglob("*")
            if found.is_file()
            and not found.is_symlink()
            and ".enc." not in found.name
            and b"escrowed-secret" in _head(found)
        ]
        seen.append(
            (
                stat.S_ISFIFO(Path(path).stat().st_mode),
                Path(path).parent.stat().st_mode & 0o777,
                holding,
            )
        )
        return read(path)

    monkeypatch.setattr(providers, "_imported_machine_secrets", observed)
    result = run(workdir, {"adoptSecrets": True})
    assert result.of_type(SECRETS)[0].import_id
    assert seen == [(True, 0o700, [])]


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(1 << 20)
    except OSError:
        return b""


def test_a_state_and_file_that_disagree_stop_with_a_clear_message(workdir: Path) -> None:
    encrypt(workdir / "talos-secrets.enc.yaml", other_bundle())
    result = run(workdir, expect_error=True)
    message = str(result.error)
    assert "talos-secrets.enc.yaml holds other Talos machine secrets" in message
    assert "cluster.secret" in message and "adoptSecrets" in message
    assert "escrowed-secret" not in message and "cluster-secret" not in message
    assert not [r for r in result.of_type(APPLY) if r.inputs.get("clientConfiguration")]


def test_a_matching_file_lets_the_run_through(workdir: Path) -> None:
    encrypt(workdir / "talos-secrets.enc.yaml", STATE_BUNDLE)
    result = run(workdir)
    assert result.of_type(APPLY)
    assert result.of_type(SECRETS)[0].import_id == ""


def test_adopting_without_an_escrow_file_is_refused_before_anything(workdir: Path) -> None:
    result = run(workdir, {"adoptSecrets": True}, expect_error=True)
    assert "homelab:backup.adoptSecrets" in str(result.error)
    assert result.registrations == []


def test_an_escrow_file_that_is_not_a_secrets_bundle_is_refused(workdir: Path) -> None:
    encrypt(workdir / "talos-secrets.enc.yaml", {"cluster": {"id": "x"}})
    result = run(workdir, {"adoptSecrets": True}, expect_error=True)
    assert "talos-secrets.enc.yaml:cluster.secret" in str(result.error)
    assert result.registrations == []


# --- The Flux deploy key ---------------------------------------------------------------------

ESCROWED_KEY = {
    "identity": "-----BEGIN OPENSSH PRIVATE KEY-----\nescrowed\n"  # pragma: allowlist secret
    "-----END OPENSSH PRIVATE KEY-----\n",
    "identity.pub": "ssh-ed25519 AAAAescrowed",
}


def test_the_deploy_key_is_escrowed(workdir: Path) -> None:
    result = run(workdir)
    (key,) = result.of_type(DEPLOY_KEY)
    target = run_escrow_command(result, workdir, "flux-deploy-key-escrow")
    assert target.name == "flux-deploy-key.enc.yaml"
    assert "OPENSSH PRIVATE KEY" not in target.read_text()
    assert decrypt(target) == {
        "identity": key.state["privateKeyOpenssh"],
        "identity.pub": key.state["publicKeyOpenssh"],
    }


def test_a_rebuild_adopts_the_deploy_key_so_the_git_host_needs_no_new_one(workdir: Path) -> None:
    encrypt(workdir / "talos-secrets.enc.yaml", STATE_BUNDLE)
    encrypt(workdir / "flux-deploy-key.enc.yaml", ESCROWED_KEY)
    result = run(workdir, {"adoptSecrets": True})
    assert result.of_type(DEPLOY_KEY) == []
    assert result.outputs["deployKeyPublic"] == ESCROWED_KEY["identity.pub"]
    source = result.one(SECRET, "flux-system")
    assert source.inputs["stringData"]["identity"] == ESCROWED_KEY["identity"]
    assert ESCROWED_KEY["identity"] not in list(plain_strings(source.raw_inputs))


def test_a_deploy_key_file_that_disagrees_with_the_state_stops_the_run(workdir: Path) -> None:
    encrypt(workdir / "flux-deploy-key.enc.yaml", ESCROWED_KEY)
    result = run(workdir, expect_error=True)
    assert "flux-deploy-key.enc.yaml holds another Flux deploy key" in str(result.error)
    assert "AAAAescrowed" not in str(result.error)
