"""The wildcard certificate's Secret, escrowed with sops, is put back before cert-manager runs on a
rebuild (real sops, pyrage key)."""

from __future__ import annotations

from pathlib import Path

from harness.engine import plain_strings
from harness.tokens import KUSTOMIZATION, SECRET
from tests.real_sops import encrypt, run
from tests.test_secrets_escrow import STATE_BUNDLE

# As `kubectl -n traefik get secret wildcard-tls -o yaml` writes it (server fields included).
EXPORTED = {
    "apiVersion": "v1",
    "kind": "Secret",
    "type": "kubernetes.io/tls",
    "metadata": {
        "name": "wildcard-tls",
        "namespace": "traefik",
        "resourceVersion": "4242",
        "uid": "0b0c",
        "annotations": {
            "cert-manager.io/issuer-name": "letsencrypt-production",
            "cert-manager.io/issuer-kind": "ClusterIssuer",
            "cert-manager.io/issuer-group": "cert-manager.io",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
        },
    },
    "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5LW1hdGVyaWFs"},
}


def rebuild(workdir: Path) -> None:
    encrypt(workdir / "talos-secrets.enc.yaml", STATE_BUNDLE)
    encrypt(workdir / "wildcard-tls.enc.yaml", EXPORTED)


def test_a_rebuild_puts_the_certificate_back_before_any_flux_layer(workdir: Path) -> None:
    rebuild(workdir)
    result = run(workdir, {"adoptSecrets": True})
    secret = result.one(SECRET, "wildcard-certificate")
    assert secret.inputs["type"] == "kubernetes.io/tls"
    assert secret.inputs["metadata"]["name"] == "wildcard-tls"
    assert secret.inputs["metadata"]["namespace"] == "traefik"
    assert secret.inputs["data"] == EXPORTED["data"]
    assert "a2V5LW1hdGVyaWFs" not in list(plain_strings(secret.raw_inputs))
    # Only cert-manager's annotations (its issuer check), no server fields.
    assert secret.inputs["metadata"]["annotations"] == {
        k: v for k, v in EXPORTED["metadata"]["annotations"].items() if "cert-manager" in k
    }
    # cert-manager owns the Secret once it runs: Pulumi never writes it again.
    assert set(secret.ignore_changes) >= {"data", "metadata"}
    # cert-manager is installed by the Flux layers; each waits for the restored Secret.
    for layer in result.of_type(KUSTOMIZATION):
        assert result.waits_for(layer, secret), layer.name


def test_a_running_cluster_keeps_its_own_certificate(workdir: Path) -> None:
    rebuild(workdir)
    result = run(workdir)
    assert [s for s in result.of_type(SECRET) if s.name == "wildcard-certificate"] == []


def test_an_escrow_file_that_is_no_tls_secret_is_refused(workdir: Path) -> None:
    rebuild(workdir)
    encrypt(workdir / "wildcard-tls.enc.yaml", {**EXPORTED, "type": "Opaque"})
    result = run(workdir, {"adoptSecrets": True}, expect_error=True)
    assert str(result.error).startswith("homelab:backup.certificateFile")
    assert result.registrations == []
