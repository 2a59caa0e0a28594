"""GitOps: Flux installed from its release manifest, the Git source, and the layered Kustomizations.

After this, Flux reconciles everything under kubernetes/ with no manual step: the age key, the
cluster settings and the cluster secrets are in place before the first Kustomization exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from gitops.certificate import restore_certificate
from gitops.deploy_key import deploy_key
from gitops.layers import (
    FLUX_NAMESPACE,
    LAYERS,
    SECRETS_SECRET,
    SETTINGS_CONFIGMAP,
    SOPS_SECRET,
    SOURCE_NAME,
    check_layers,
    flux_install_manifest,
    git_repository_spec,
    kustomization_spec,
    with_requeue_dependency,
    worst_case_seconds,
)
from settings import SecretValues, Settings

# Ask pulumi-kubernetes to wait until Flux reports the object Ready, so `pulumi up` ends on a
# reconciled cluster (or says which layer did not get there).
WAIT_FOR_READY = {"pulumi.com/waitFor": "condition=Ready"}
SOURCE_TIMEOUT = "900"  # covers adding the deploy key to the Git host during the first run


@dataclass(frozen=True)
class GitOpsArgs:
    settings: Settings
    secrets: SecretValues
    # Resolves only once the cluster is healthy (see TalosCluster).
    kubeconfig: pulumi.Output[str]
    # The escrowed deploy key, when the escrow file exists (settings/escrow.py).
    deploy_key_escrow: Mapping[str, str] | None = None
    # The escrowed wildcard certificate Secret, put back on a rebuild (adoptSecrets).
    certificate_escrow: Mapping[str, Any] | None = None


class GitOps(pulumi.ComponentResource):
    deploy_key_public: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: GitOpsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:gitops:GitOps", name, None, opts)
        check_layers(LAYERS)
        settings, secrets = args.settings, args.secrets

        provider = k8s.Provider("kubernetes", kubeconfig=args.kubeconfig, opts=self._child())
        # The provider registers install.yaml's objects itself (yaml/v2 is a component built by
        # the provider); `transforms`, unlike `transformations`, reach such children: "Transforms
        # support modifying child resources of packaged components" (pulumi.com/docs/iac/concepts/
        # resources/options/transformations/).
        flux = k8s.yaml.v2.ConfigFile(
            "flux",
            file=flux_install_manifest(settings.gitops.flux_version),
            opts=pulumi.ResourceOptions.merge(
                self._child(provider), pulumi.ResourceOptions(transforms=[_requeue_dependency])
            ),
        )
        # Everything below lives in flux-system or is a Flux kind: both come from the install
        # manifest, which the data flow does not show.
        after_flux = self._child(provider, depends_on=[flux])

        self.deploy_key_public = None
        git_auth: dict[str, pulumi.Input[str]]
        if settings.gitops.uses_ssh:
            private_key, public_key, key = deploy_key(
                self,
                settings.backup.deploy_key_file,
                args.deploy_key_escrow,
                settings.backup.adopt_secrets,
            )
            self.deploy_key_public = public_key
            if key is not None and not pulumi.runtime.is_dry_run():
                # Only in the update: a preview that knows the key from state would print it
                # a second time in the same `pulumi up`. An adopted key is on the host already.
                public_key.apply(_announce_deploy_key(settings.gitops.repository, key))
            git_auth = {
                "identity": private_key,
                "identity.pub": public_key,
                "known_hosts": settings.gitops.known_hosts,
            }
        else:
            assert secrets.git_https_token is not None  # checked by the settings loader
            git_auth = {
                "username": settings.gitops.https_username,
                "password": secrets.git_https_token,
            }

        inputs = [
            _secret(SOURCE_NAME, git_auth, after_flux),
            _secret(SOPS_SECRET, {"age.agekey": secrets.age_key}, after_flux),
            _secret(SECRETS_SECRET, secrets.cluster_secrets, after_flux),
            k8s.core.v1.ConfigMap(
                SETTINGS_CONFIGMAP,
                metadata=_metadata(SETTINGS_CONFIGMAP),
                data=settings.flux_settings,
                opts=after_flux,
            ),
        ]
        if args.certificate_escrow is not None and settings.backup.adopt_secrets:
            # Before cert-manager exists: it then finds a valid certificate and issues none.
            inputs += restore_certificate(args.certificate_escrow, self._child(provider))
        # Flux must find its credentials, key and substitutions on its very first reconcile.
        after_inputs = self._child(provider, depends_on=[flux, *inputs])

        source = _flux_object(
            name=SOURCE_NAME,
            api_version="source.toolkit.fluxcd.io/v1",
            kind="GitRepository",
            spec=git_repository_spec(settings.gitops.repository, settings.gitops.branch),
            timeout_seconds=SOURCE_TIMEOUT,
            opts=after_inputs,
        )
        _announce_wait(
            source,
            f"Flux to reach {settings.gitops.repository}",
            SOURCE_TIMEOUT,
            "sources git",
            inputs,
        )
        for layer in LAYERS:
            # Pulumi starts waiting when it creates the object, in parallel for all layers.
            layer_timeout = str(worst_case_seconds(layer) + int(SOURCE_TIMEOUT))
            kustomization = _flux_object(
                name=layer.name,
                api_version="kustomize.toolkit.fluxcd.io/v1",
                kind="Kustomization",
                spec=kustomization_spec(layer),
                timeout_seconds=layer_timeout,
                opts=after_inputs,
            )
            _announce_wait(
                kustomization,
                f"Flux layer {layer.name} to be Ready",
                layer_timeout,
                "kustomizations",
                inputs,
            )
        self.register_outputs({"deployKeyPublic": self.deploy_key_public})

    def _child(
        self, provider: pulumi.ProviderResource | None = None, depends_on: list[Any] | None = None
    ) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, provider=provider, depends_on=depends_on)


def _metadata(name: str, annotations: dict[str, str] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(name=name, namespace=FLUX_NAMESPACE, annotations=annotations)


def _secret(
    name: str, data: pulumi.Input[Mapping[str, pulumi.Input[str]]], opts: pulumi.ResourceOptions
) -> k8s.core.v1.Secret:
    return k8s.core.v1.Secret(
        name,
        metadata=_metadata(name),
        type="Opaque",
        string_data=pulumi.Output.secret(data),
        opts=opts,
    )


def _flux_object(
    *,
    name: str,
    api_version: str,
    kind: str,
    spec: dict[str, Any],
    timeout_seconds: str,
    opts: pulumi.ResourceOptions,
) -> k8s.apiextensions.CustomResource:
    annotations = {**WAIT_FOR_READY, "pulumi.com/timeoutSeconds": timeout_seconds}
    return k8s.apiextensions.CustomResource(
        f"{kind.lower()}-{name}",
        api_version=api_version,
        kind=kind,
        metadata=_metadata(name, annotations),
        spec=spec,
        opts=opts,
    )


def _requeue_dependency(
    args: pulumi.ResourceTransformArgs,
) -> pulumi.ResourceTransformResult | None:
    kind = args.type_.rsplit(":", 1)[-1]
    props = with_requeue_dependency(kind, dict(args.props))
    return None if props is None else pulumi.ResourceTransformResult(props=props, opts=args.opts)


def _announce_deploy_key(repository: str, key: tls.PrivateKey) -> Callable[[str], None]:
    def announce(public_key: str) -> None:
        # The key alone on its last line, so it can be copied whole.
        pulumi.log.info(
            f"Flux deploy key: add it read-only to {repository} if it is not there yet "
            f"(Pulumi waits for Flux to reach the repository):\n{public_key.strip()}",
            resource=key,
        )

    return announce


def _announce_wait(
    resource: pulumi.CustomResource,
    what: str,
    timeout_seconds: str,
    flux_kind: str,
    inputs: Sequence[pulumi.CustomResource],
) -> None:
    """Log what `pulumi up` waits for, and how to watch it, once the wait begins.

    The wait starts when Flux's inputs exist; only an update waits. `flux get <kind> --watch` is
    the flag `flux get` declares for every kind (fluxcd/flux2 cmd/flux/get.go).
    """
    if pulumi.runtime.is_dry_run():
        return
    minutes = int(timeout_seconds) // 60
    message = (
        f"Waiting up to {minutes} min for {what}. Watch it with:\n"
        f"flux --kubeconfig ./kubeconfig get {flux_kind} --watch\n"
        "(./kubeconfig is exported after the first successful run.)"
    )
    pulumi.Output.all(*(item.id for item in inputs)).apply(
        lambda _: pulumi.log.info(message, resource=resource)
    )
