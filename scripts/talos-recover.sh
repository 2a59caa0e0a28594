#!/usr/bin/env bash
# Bootstrap etcd from an encrypted snapshot instead of an empty member: the restore step that
# cluster/restore.py runs (through pulumi-command) in place of the provider's Bootstrap.
#
# Environment (set by the program): RECOVER_SNAPSHOT (an etcd-*.snapshot.sops.json from the NAS),
# RECOVER_NODE (the bootstrap control plane), RECOVER_CONTROLPLANES (every control plane, space
# separated), RECOVER_TALOSCONFIG (the talosconfig text; a secret).
#
# Talos disaster recovery (talos.dev/latest/advanced/disaster-recovery): once the etcd service
# of every control plane waits in `Preparing`, `talosctl bootstrap --recover-from=<snapshot>` on
# one of them; the others join it. The `service` listing's columns are NODE SERVICE STATE ...
# (cmd/talosctl/cmd/talos/service.go).
set -euo pipefail
umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '%s\n' "$RECOVER_TALOSCONFIG" >"$work/talosconfig"
export TALOSCONFIG="$work/talosconfig"
sops decrypt --input-type json --output-type binary "$RECOVER_SNAPSHOT" >"$work/db.snapshot"

deadline=$((SECONDS + ${RECOVER_WAIT_SECONDS:-1800}))
for node in $RECOVER_CONTROLPLANES; do
  until [[ "$(talosctl --nodes "$node" --endpoints "$node" service 2>/dev/null | awk '$2 == "etcd" { print $3 }')" == Preparing ]]; do
    if ((SECONDS >= deadline)); then
      echo "etcd on $node never reached Preparing; is the node up with its config applied?" >&2
      exit 1
    fi
    sleep "${RECOVER_POLL_SECONDS:-10}"
  done
  echo "etcd on $node waits in Preparing"
done
talosctl --nodes "$RECOVER_NODE" --endpoints "$RECOVER_NODE" bootstrap --recover-from="$work/db.snapshot"
