#!/usr/bin/env bash
# Upgrade Talos to the stack output installerImage, one node at a time, with `talosctl health`
# before the first node and after every node.  Usage: scripts/talos-upgrade.sh [node-name...]
#
# Order: control planes first (in controlPlaneIps order), then workers. The control plane holds
# etcd and the API server: upgrading it one member at a time never costs etcd its quorum, and a
# bad release shows up there while every worker still runs the known-good version (Sidero's Omni
# upgrades in the same order). Workers go last, one at a time, so their pods have healthy,
# already-upgraded nodes to move to.
#
# --preserve keeps the EPHEMERAL partition and etcd membership: required on a single-node cluster.
# A new Talos version: bump homelab:cluster.talosVersion (and talosctl in .mise.toml), run
# `mise run up` (new machine configs and installerImage output), then this.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

stack=homelab
: "${TALOSCONFIG:?is not set: run this through mise (mise run talos:upgrade)}"
if [[ ! -f "$TALOSCONFIG" ]]; then
  echo "No talosconfig at $TALOSCONFIG: run mise run config:decrypt first." >&2
  exit 1
fi

# One line per fact: "image <ref>", "controlplanes <ip,...>", "workers <ip,...>", "node <name> <ip>".
plan="$(OUTPUTS="$(pulumi stack output --stack "$stack" --json)" python3 - "$@" <<'PY'
import json
import os
import sys

out = json.loads(os.environ["OUTPUTS"])
image, node_ips, cps = out.get("installerImage"), out.get("nodeIps"), out.get("controlPlaneIps")
if not (image and node_ips and cps):
    sys.exit("stack outputs installerImage, nodeIps and controlPlaneIps are missing: run `mise run up`")
unknown = sorted(set(sys.argv[1:]) - set(node_ips))
if unknown:
    sys.exit(f"unknown node(s) {', '.join(unknown)}; the stack has {', '.join(sorted(node_ips))}")
name_of = {ip: name for name, ip in node_ips.items()}
workers = sorted((name, ip) for name, ip in node_ips.items() if ip not in cps)
print("image", image)
print("controlplanes", ",".join(cps))
print("workers", ",".join(ip for _, ip in workers))
for name, ip in [(name_of[ip], ip) for ip in cps] + workers:
    if not sys.argv[1:] or name in sys.argv[1:]:
        print("node", name, ip)
PY
)"

image="" controlplanes="" workers=""
nodes=()
while read -r kind first second; do
  case "$kind" in
    image) image="$first" ;;
    controlplanes) controlplanes="$first" ;;
    workers) workers="${first:-}" ;;
    node) nodes+=("$first=$second") ;;
  esac
done <<<"$plan"

health() {
  local args=(--nodes "${controlplanes%%,*}" health --control-plane-nodes "$controlplanes" --wait-timeout 15m)
  if [[ -n "$workers" ]]; then
    args+=(--worker-nodes "$workers")
  fi
  talosctl "${args[@]}"
}

echo "Target image: $image"
echo "Checking cluster health before the first node..."
health
for entry in "${nodes[@]}"; do
  name="${entry%%=*}" ip="${entry#*=}"
  echo "==> Upgrading $name ($ip)"
  talosctl --nodes "$ip" upgrade --image "$image" --preserve --wait
  echo "==> Waiting for the cluster to be healthy after $name"
  health
done
echo "All requested nodes run $image."
