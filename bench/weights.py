"""How long each step of a first `pulumi up` takes: documented estimates, one table; the Flux
layers' figures come from the chart and layer model in bench/flux.py.

The deploy estimate is the critical path weighted by these numbers, so only their order of
magnitude matters: a change that makes work serial shows up as a longer estimate, whatever the
exact figures. Keys are (type token, object name or None): the name is a Kubernetes object's
metadata.name (the Flux layers) or a Pulumi resource name, and may be a shell-style pattern
(`*-staged`); None matches every object of the type.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from bench import flux
from gitops.layers import LAYERS
from harness.tokens import (
    APPLY,
    BOOTSTRAP,
    COMMAND,
    CONFIGMAP,
    DEPLOY_KEY,
    FLUX,
    GIT_REPOSITORY,
    HEALTH,
    ISO,
    K8S_PROVIDER,
    KUBECONFIG,
    KUSTOMIZATION,
    PROXMOX_PROVIDER,
    SCHEMATIC,
    SECRET,
    SECRETS,
    VM,
)

# A type nobody estimated yet: API calls that return as soon as the object exists.
DEFAULT_SECONDS = 2.0


@dataclass(frozen=True)
class Estimate:
    seconds: float
    why: str


ESTIMATES: dict[tuple[str, str | None], Estimate] = {
    (SCHEMATIC, None): Estimate(2, "one POST to factory.talos.dev"),
    (SECRETS, None): Estimate(1, "local CA and key generation"),
    (PROXMOX_PROVIDER, None): Estimate(1, "provider configure, no API call"),
    (ISO, None): Estimate(
        120, "Image Factory builds the ISO on first request, then ~100 MB over a home link"
    ),
    (VM, None): Estimate(
        45, "disks + start; no wait for the guest agent (agent.waitForIp.disabled)"
    ),
    (APPLY, None): Estimate(
        180, "apply in maintenance mode, pull the installer, install to disk, reboot"
    ),
    (APPLY, "*-staged"): Estimate(
        3,
        "staged apply to a running node: the config is written for the next boot, nothing "
        "restarts (Talos ApplyConfiguration mode STAGED)",
    ),
    # Day-two steps (cluster/rollout.py) on a first deploy: the create only records what the step
    # guards (cluster/steps.py RECORD), no node is touched.
    (COMMAND, None): Estimate(1, "a local `echo` of the guarded value: create touches no node"),
    (COMMAND, "cluster-health"): Estimate(
        300,
        "talosctl health: etcd, control plane pods, CNI and every node Ready (image pulls on "
        "each node)",
    ),
    (BOOTSTRAP, None): Estimate(
        30, "retries until apid answers at the static IP, then etcd bootstrap"
    ),
    (KUBECONFIG, None): Estimate(5, "one Talos API call"),
    (HEALTH, None): Estimate(
        300, "etcd, control plane pods, CNI and every node Ready (image pulls on each node)"
    ),
    (K8S_PROVIDER, None): Estimate(1, "API discovery against the new cluster"),
    (FLUX, None): Estimate(
        60, "Flux install.yaml: CRDs + 4 controllers, awaited until their Deployments are ready"
    ),
    (DEPLOY_KEY, None): Estimate(1, "local ED25519 key generation"),
    (SECRET, None): Estimate(1, "one API create"),
    (CONFIGMAP, None): Estimate(1, "one API create"),
    (GIT_REPOSITORY, None): Estimate(
        20, "source-controller clones the repo and stores an artifact"
    ),
    (KUSTOMIZATION, None): Estimate(60, "a layer of plain manifests"),
    # Each layer: its longest chart chain (bench/flux.py), plus the dependency requeue on each of
    # its layer edges, which graph.py's Flux edges do not weigh.
    **{
        (KUSTOMIZATION, layer.name): Estimate(
            flux.layer_seconds(flux.after(), layer.name)
            + flux.after().requeue_s * len(layer.depends_on),
            f"bench/flux.py: longest chain in {layer.name}, {flux.after().requeue_s:.0f} s "
            "requeue per layer edge",
        )
        for layer in LAYERS
    },
}


def estimate(kind: str, object_name: str | None) -> Estimate:
    """The most specific estimate: (type, name), then (type, any name), then the default."""
    found = ESTIMATES.get((kind, object_name))
    if found is None and object_name is not None:
        found = next(
            (
                value
                for (key_kind, pattern), value in ESTIMATES.items()
                if key_kind == kind and pattern and fnmatchcase(object_name, pattern)
            ),
            None,
        )
    found = found or ESTIMATES.get((kind, None))
    return found or Estimate(DEFAULT_SECONDS, "no estimate for this type: default")
