"""Every checkov finding on the built layers that is accepted rather than fixed, with its reason.
The one place to look; test_manifests_security.py fails on any finding not listed here and on
any entry here that no longer matches a finding."""

from __future__ import annotations

# (check id, checkov's resource id) -> why it is accepted.
ACCEPTED: dict[tuple[str, str], str] = {
    ("CKV_K8S_43", "Deployment.whoami.whoami"): (
        "the image is pinned to a release tag that Renovate bumps; a digest pin needs a registry "
        "lookup per bump and would hide the version from readers"
    ),
    ("CKV_K8S_15", "Deployment.whoami.whoami"): (
        "imagePullPolicy Always makes every restart depend on the registry; with a pinned tag "
        "IfNotPresent (the default) pulls the same image"
    ),
    ("CKV_K8S_43", "CronJob.etcd-backup.etcd-snapshot"): (
        "talosctl and sops are pinned to release tags (talosctl in lockstep with the cluster's "
        "Talos version) that Renovate bumps; same trade-off as whoami"
    ),
    ("CKV_K8S_15", "CronJob.etcd-backup.etcd-snapshot"): (
        "a pinned tag with IfNotPresent pulls the same image; Always would make every snapshot "
        "depend on the registry"
    ),
    ("CKV2_K8S_6", "Pod.whoami.whoami.app.kubernetes.io/name-whoami"): (
        "Talos' default CNI (Flannel) does not enforce NetworkPolicy, so a policy would be "
        "decoration; revisit with a policy-enforcing CNI"
    ),
}
