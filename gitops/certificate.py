"""Put the escrowed wildcard certificate back before cert-manager runs, so a rebuild issues no new
certificate while the old one is valid.

cert-manager issues only when the Secret is missing, its key or names do not match the
Certificate, its issuer annotations differ, or renewal is due (cert-manager.io/docs/faq, "When do
certs get re-issued?"): the Secret is restored with its data and its cert-manager.io annotations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

# The Certificate's namespace and secretName (kubernetes/infrastructure-config/traefik/).
CERTIFICATE_NAMESPACE = "traefik"
CERTIFICATE_SECRET = "wildcard-tls"  # pragma: allowlist secret
_ANNOTATION_PREFIX = "cert-manager.io/"


def restore_certificate(
    escrowed: Mapping[str, Any], opts: pulumi.ResourceOptions
) -> list[pulumi.Resource]:
    """The namespace and the Secret, created once; cert-manager (and Flux, for the namespace)
    own them afterwards, so later changes are theirs (ignore_changes)."""
    namespace = k8s.core.v1.Namespace(
        "certificate-namespace",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=CERTIFICATE_NAMESPACE),
        opts=pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(ignore_changes=["metadata"], retain_on_delete=True)
        ),
    )
    annotations = {
        name: str(value)
        for name, value in (escrowed.get("metadata", {}).get("annotations") or {}).items()
        if name.startswith(_ANNOTATION_PREFIX)
    }
    secret = k8s.core.v1.Secret(
        "wildcard-certificate",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=CERTIFICATE_SECRET, namespace=CERTIFICATE_NAMESPACE, annotations=annotations
        ),
        type="kubernetes.io/tls",
        data=pulumi.Output.secret({k: str(v) for k, v in escrowed["data"].items()}),
        opts=pulumi.ResourceOptions.merge(
            opts,
            pulumi.ResourceOptions(
                depends_on=[namespace], ignore_changes=["data", "metadata"], retain_on_delete=True
            ),
        ),
    )
    return [namespace, secret]
