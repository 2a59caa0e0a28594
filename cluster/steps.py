"""The shell text of every day-two step, run by pulumi-command's `local.Command` under bash.

Flags are talosctl v1.12's, the version `.mise.toml` pins (siderolabs/talos v1.12.4,
cmd/talosctl/cmd/talos/): `upgrade` has `--image` and waits by default (`--wait`, track.go) and
has no drain flag (the node drains itself); `--preserve` is hidden and unused since 1.8, so it is
not passed. `reset` is graceful by default (cordon, drain, leave etcd: reset.go), `health` takes
`--control-plane-nodes`, `--worker-nodes`, `--wait-timeout` (health.go), `upgrade-k8s` takes
`--to` (upgrade-k8s.go). On talosctl 1.13 `upgrade` drains from the client by default and fails on
a blocking PodDisruptionBudget: a single node then needs `--drain=false` (siderolabs/talos v1.13.0,
cmd/talosctl/cmd/talos/upgrade.go); revisit this module with the pin.

Secrets never appear in this text: the step reads them from stdin (see `SECRETS_STDIN`), one
base64 line each, and hands them to talosctl/kubectl as process-substitution files, so they touch
no disk. Everything that decides whether a step runs (images, config digest, VM size) is a plain
environment value, so `pulumi preview --diff` shows it per node.
"""

from __future__ import annotations

# One budget for every step that waits on a node over a slow home uplink: the install apply, then
# bootstrap (installer pull, disk write, reboot, TPM enrolment, etcd start) and each health gate.
# The provider's own default is 10 minutes (terraform-provider-talos v0.11.0, which
# pulumiverse-talos 0.8.1 bridges: `Timeouts.Create(ctx, 10*time.Minute)` in
# pkg/talos/talos_machine_bootstrap_resource.go and talos_machine_configuration_apply_resource.go).
# A Go duration, as the SDK's BootstrapTimeoutsArgs/TimeoutArgs docstrings and talosctl's
# `--wait-timeout` take it.
NODE_TIMEOUT = "30m"

# bash, not sh: the helpers below use process substitution.
INTERPRETER = ["/bin/bash", "-c"]

# stdin layout the prelude reads: base64(talosconfig), base64(kubeconfig), Proxmox API token.
# `nodes <label selector> [a,b]`: the given IPs, then the InternalIP of every Kubernetes Node the
# selector matches that is not among them, comma-separated (see `health`). The JSONPath is the
# kubectl quick reference's "ExternalIP of all nodes" with InternalIP (kubernetes.io/docs/
# reference/kubectl/quick-reference/); `!key` selects objects without that label (kubernetes.io/
# docs/concepts/overview/working-with-objects/labels/, set-based requirements). It retries for
# 30 minutes (NODE_TIMEOUT): after a lone control plane's reboot the API server is still starting,
# which talosctl health itself would wait out.
PRELUDE = """set -euo pipefail
read -r talosconfig_b64; read -r kubeconfig_b64; read -r pve_token
talos() { talosctl --talosconfig <(printf '%s' "$talosconfig_b64" | base64 -d) "$@"; }
kube() { kubectl --kubeconfig <(printf '%s' "$kubeconfig_b64" | base64 -d) "$@"; }
pve() {
  curl -fsS ${PROXMOX_INSECURE:+--insecure} -X POST \\
    -H "Authorization: PVEAPIToken=$pve_token" "$PROXMOX_API/$1"
}
nodes() {
  local found="${2:-}" live ip tries=0
  until live="$(kube get nodes -l "$1" \\
      -o 'jsonpath={.items[*].status.addresses[?(@.type=="InternalIP")].address}')"; do
    (( ++tries < 180 )) || return 1
    sleep 10
  done
  for ip in $live; do [[ ",$found," == *",$ip,"* ]] || found="${found:+$found,}$ip"; done
  printf '%s' "$found"
}
"""

# Where the etcd snapshot taken before the first control-plane upgrade is kept, SOPS-encrypted
# (the README names it; `.sops.yaml`'s rules match `*.enc.*`).
SNAPSHOT_DIR = "backups/etcd"
# How long a restore waits for every control plane's etcd to reach Preparing (as NODE_TIMEOUT).
RECOVER_WAIT_SECONDS = 1800


def script(*lines: str) -> str:
    return PRELUDE + "\n".join(lines) + "\n"


# A step's `update` runs on any input change, also when only the node list in CLUSTER_NODES
# moved (a node added or removed). Each step prints what it guards when done; its next run sees
# that as PULUMI_COMMAND_STDOUT (add_previous_output_in_env, on by default: pulumi-command
# common/inputs.go) and does nothing when the guarded value is unchanged.
RECORD = 'echo "done $GUARD"'
UNCHANGED = '[ "${PULUMI_COMMAND_STDOUT:-}" = "done $GUARD" ] && exit 0'


def guarded(*lines: str) -> str:
    return script(UNCHANGED, *lines, RECORD)


# The label Talos puts on every control plane's Node, and the one its health check sorts Nodes by
# (siderolabs/talos v1.12.4, pkg/machinery/constants LabelNodeRoleControlPlane; isControlPlaneNode
# in internal/app/machined/internal/server/v1alpha1/v1alpha1_cluster.go).
CONTROLPLANE_LABEL = "node-role.kubernetes.io/control-plane"


def health(configured: bool = True) -> str:
    """Block until every node is up and etcd/Kubernetes are healthy (server-side check).

    `talosctl health --control-plane-nodes/--worker-nodes` wants the lists to be exactly the
    cluster: every Kubernetes Node must be listed (K8sAllNodesReportedAssertion → cluster.
    NodesMatch fails on "unexpected nodes"), and every etcd member a listed control plane
    (EtcdControlPlaneNodesAssertion) (siderolabs/talos v1.12.4, pkg/cluster/check/kubernetes.go,
    etcd.go, default.go; pkg/cluster/cluster.go). A node removed from the config stays a Node and
    an etcd member until its `decommission` runs, and the engine runs deletes only after every
    create and update of the run (pulumi/pulumi pkg/resource/deploy/deployment_executor.go:
    `performPostSteps` once the program's registrations are done). So each gate lists the
    configured nodes (CLUSTER_CONTROLPLANES, CLUSTER_WORKERS: a configured node that is missing
    still fails) plus every Node Kubernetes has now, by its control-plane label (`nodes` in the
    prelude). A decommission's gate (configured=False) has only stale lists in its state, so it
    lists just the Nodes left after the removal. The first control plane listed answers: it
    is still there, also when the first configured one is the node being removed."""
    cps, workers = ('"$CLUSTER_CONTROLPLANES"', '"$CLUSTER_WORKERS"') if configured else ("", "")
    return "\n".join(
        [
            f'cps="$(nodes {CONTROLPLANE_LABEL} {cps})"',
            f"workers=\"$(nodes '!{CONTROLPLANE_LABEL}' {workers})\"",
            'talos -e "${cps%%,*}" -n "${cps%%,*}" health --control-plane-nodes "$cps" '
            '${workers:+--worker-nodes "$workers"} '
            f"--wait-timeout {NODE_TIMEOUT}",
        ]
    )


# The schematic part of the target installer image, <registry>/<platform>-installer[-secureboot]/
# <schematic>:<version> (siderolabs/image-factory docs/api.md, "`installer` Image"), cut out by
# bash parameter expansion: the step needs no tool beyond talosctl and grep (no jq is pinned).
SCHEMATIC_FROM_IMAGE = ('schematic="${TALOS_IMAGE%:*}"', 'schematic="${schematic##*/}"')


def skip_if_running(ip: str) -> list[str]:
    """Skip the upgrade when the node already runs the target installer image: its Talos version
    and its Image Factory schematic (a re-run after a partial failure). A change of extensions
    alone keeps the version and moves only the schematic, so the version alone is not enough.

    Version: the `version` resource, spec.version (siderolabs/talos v1.12.4, pkg/machinery/
    resources/runtime/version.go). Schematic: Image Factory adds to every image it builds a
    virtual system extension named `schematic` whose manifest version is the schematic ID
    (siderolabs/image-factory, internal/artifacts/schematic.go `schematicExtension`, appended in
    internal/profile/profile.go; the name is pkg/constants SchematicIDExtensionName). Talos shows
    each installed extension as an `ExtensionStatus` resource (alias `extensions`) whose spec is
    the layer {image, metadata: {name, version, ...}}; its ID is the layer's image file, not the
    extension name (talos v1.12.4, pkg/machinery/resources/runtime/extension_status.go,
    pkg/machinery/extensions/config.go, internal/app/machined/pkg/controllers/runtime/
    extension_status.go). So every extension's version is listed, one line per resource
    (`-o jsonpath` applies the path to each resource and prints a scalar on its own line:
    cmd/talosctl/cmd/talos/output/jsonpath.go), and the schematic ID must be one of those whole
    lines: it is a SHA-256 hex digest of the schematic (image-factory pkg/schematic/schematic.go
    `ID`), not a version any other extension carries. grep reads all its input (no `-q`), so
    talosctl never dies of SIGPIPE under pipefail. A node that cannot be asked is not skipped:
    its upgrade runs, and fails there or at the health gate."""
    talos = f"talos -e {ip} -n {ip}"
    return [
        *SCHEMATIC_FROM_IMAGE,
        f'[ "$({talos} get version -o \'jsonpath={{.spec.version}}\')" = "$TALOS_VERSION" ] && '
        f"{talos} get extensions -o 'jsonpath={{.spec.metadata.version}}' "
        f'| grep -xF "$schematic" >/dev/null && {{ {RECORD}; exit 0; }}',
    ]


def etcd_snapshot(ip: str) -> list[str]:
    """Snapshot etcd, encrypt it with sops at once; the plain copy lives in a private temp dir."""
    return [
        f"mkdir -p {SNAPSHOT_DIR}",
        'tmp="$(mktemp -d)"; trap \'rm -rf "$tmp"\' EXIT',
        f'talos -e {ip} -n {ip} etcd snapshot "$tmp/etcd.db"',
        f'out="{SNAPSHOT_DIR}/etcd-$(date -u +%Y%m%dT%H%M%SZ)-$TALOS_VERSION.enc.db"',
        'sops encrypt --filename-override "$out" --output "$out" "$tmp/etcd.db"',
    ]


def upgrade(ip: str, gate: str, snapshot: bool) -> str:
    lines = [*skip_if_running(ip), gate]
    if snapshot:
        lines += etcd_snapshot(ip)
    lines += [f'talos -e {ip} -n {ip} upgrade --image "$TALOS_IMAGE" --wait', gate]
    return guarded(*lines)


def reboot(ip: str, gate: str) -> str:
    """Activate a staged config: health before, reboot (waits until the node is back), health."""
    return guarded(gate, f"talos -e {ip} -n {ip} reboot --wait", gate)


def restart_vm(proxmox_node: str, gate: str) -> str:
    """Proxmox applies pending VM changes only on its own restart, not on a reboot inside the
    guest (bpg leaves them pending with reboot_after_update=False): `POST
    /nodes/{node}/qemu/{vmid}/status/reboot`, "Reboot the VM by shutting it down, and starting it
    again. Applies pending changes." (proxmox/qemu-server PVE/API2/Qemu.pm, vm_reboot; privilege
    VM.PowerMgmt). An API token authenticates as `Authorization: PVEAPIToken=<token>` (Proxmox
    wiki, "Proxmox VE API", API Tokens); with `homelab:proxmox.insecure` the self-signed
    certificate is accepted here as the provider accepts it."""
    return guarded(gate, f'pve "nodes/{proxmox_node}/qemu/$VM_ID/status/reboot"', gate)


def upgrade_kubernetes(first_controlplane: str) -> str:
    ip = first_controlplane
    return guarded(f'talos -e {ip} -n {ip} upgrade-k8s --to "$KUBERNETES_VERSION"')


def recover(first_controlplane: str, controlplanes: list[str]) -> str:
    """Bootstrap etcd from an encrypted snapshot (RECOVER_SNAPSHOT): Talos's disaster recovery
    (talos.dev/v1.12/advanced/disaster-recovery) waits until every control plane's etcd service
    is `Preparing`, then runs `bootstrap --recover-from` on one node; the others join it.

    `service` lists NODE SERVICE STATE ... (siderolabs/talos v1.12.4, cmd/talosctl/cmd/talos/
    service.go). `bootstrap --recover-from` reads the snapshot twice, for its status and to
    upload it (cmd/talosctl/cmd/talos/bootstrap.go), so the plaintext needs a real file: a
    private temp dir removed on exit, as `etcd_snapshot` does. Snapshots are sops's binary
    format in JSON (the backup CronJob's `*.snapshot.sops.json`, the pre-upgrade `*.enc.db`).
    """
    ip = first_controlplane
    waits = [
        f'until [ "$(talos -e {cp} -n {cp} service | awk \'$2 == "etcd" {{ print $3 }}\')" '
        f'= Preparing ]; do [ "$SECONDS" -lt {RECOVER_WAIT_SECONDS} ] || '
        f'{{ echo "etcd on {cp} never waited in Preparing" >&2; exit 1; }}; sleep 10; done'
        for cp in controlplanes
    ]
    return script(
        'tmp="$(mktemp -d)"; trap \'rm -rf "$tmp"\' EXIT',
        'sops decrypt --input-type json --output-type binary --output "$tmp/etcd.db" '
        '"$RECOVER_SNAPSHOT"',
        *waits,
        f'talos -e {ip} -n {ip} bootstrap --recover-from "$tmp/etcd.db"',
    )


def decommission(name: str, ip: str, controlplane: bool, endpoint: str) -> str:
    """What runs when the node leaves the config, before its VM is destroyed. kubectl's drain
    flags are those `kubectl drain --help` lists (kubernetes/kubectl pkg/cmd/drain/drain.go):
    DaemonSet pods stay, emptyDir data goes with the node, 10 minutes at most."""
    lines = []
    if not controlplane:
        lines.append(f"kube drain {name} --ignore-daemonsets --delete-emptydir-data --timeout 10m")
    # Graceful (the default): a control plane leaves etcd first; a worker is cordoned/drained.
    lines.append(f"talos -e {endpoint} -n {ip} reset --graceful --wait")
    # A reset leaves the Node object behind.
    lines.append(f"kube delete node {name} --ignore-not-found")
    # The cluster as it is once this node left (the next removal waits for it).
    lines.append(health(configured=False))
    return script(*lines)
