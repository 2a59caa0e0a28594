"""Restore: lost state → adopt the escrowed secrets; a snapshot → bootstrap with recovery, once,
after every control plane's etcd waits in Preparing (the step's text run by bash with a stand-in
talosctl and the real sops)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

from cluster import steps
from harness.engine import plain_strings, run_program
from harness.environment import SOPS, ha_config
from harness.tokens import APPLY, BOOTSTRAP, COMMAND, KUBECONFIG, SECRETS, VM
from tests.real_sops import encrypt, run
from tests.stubs import stub_path
from tests.test_secrets_escrow import STATE_BUNDLE


def snapshot(workdir: Path, content: bytes = b"etcd-snapshot-bytes") -> Path:
    """An encrypted snapshot as the backup CronJob writes it (sops, binary in, JSON out)."""
    plain = workdir / "db.plain"
    plain.write_bytes(content)
    target = workdir / "etcd-20260101T000000Z.snapshot.sops.json"
    subprocess.run(
        [
            *(str(SOPS), "encrypt", "--input-type", "binary", "--output-type", "json"),
            *("--filename-override", "x.enc.yaml", "--output", str(target), str(plain)),
        ],
        check=True,
        cwd=workdir,
    )
    plain.unlink()
    return target


def test_a_restore_adopts_the_secrets_and_recovers_etcd_instead_of_bootstrapping(
    workdir: Path,
) -> None:
    encrypt(workdir / "talos-secrets.enc.yaml", STATE_BUNDLE)
    snap = snapshot(workdir)
    config = {**ha_config(), "secretsFile": str(workdir / "secrets.enc.yaml")}
    config["backup"] = {**config["backup"], "adoptSecrets": True, "restoreFrom": str(snap)}
    result = run_program(config)
    assert result.of_type(SECRETS)[0].import_id  # adopted, not generated
    assert result.of_type(BOOTSTRAP) == []
    recover = result.one(COMMAND, "bootstrap-recover")
    assert recover.inputs["create"] == steps.recover(
        "192.168.20.101", ["192.168.20.101", "192.168.20.102", "192.168.20.103"]
    )
    assert recover.inputs["environment"] == {"RECOVER_SNAPSHOT": str(snap)}
    # The talosconfig reaches the step only as a secret stdin.
    assert recover.inputs["stdin"] not in list(plain_strings(recover.raw_inputs))
    assert {"create", "environment", "stdin"} <= set(recover.ignore_changes)
    for apply in result.of_type(APPLY):
        if "-cp-" in apply.name and apply.name.endswith("-config"):
            assert result.waits_for(recover, apply), apply.name
    (kubeconfig,) = result.of_type(KUBECONFIG)
    assert result.waits_for(kubeconfig, recover)


def test_without_a_snapshot_the_cluster_bootstraps_as_usual(workdir: Path) -> None:
    result = run(workdir)
    assert len(result.of_type(BOOTSTRAP)) == 1
    assert [c.name for c in result.of_type(COMMAND) if c.name == "bootstrap-recover"] == []


def test_a_snapshot_path_that_is_no_snapshot_is_refused_before_anything(workdir: Path) -> None:
    encrypt(workdir / "talos-secrets.enc.yaml", STATE_BUNDLE)
    (workdir / "etcd.tar.gz").write_bytes(b"not sops")
    result = run(workdir, {"restoreFrom": str(workdir / "etcd.tar.gz")}, expect_error=True)
    assert str(result.error).startswith("homelab:backup.restoreFrom")
    assert result.registrations == []


def test_a_restore_whose_snapshot_is_missing_stops_before_any_node(workdir: Path) -> None:
    """The run that restores (nothing deployed yet) needs the file; later runs do not (see
    tests/test_readme_restore.py), so it is checked with the stack's `deployed` output."""
    encrypt(workdir / "talos-secrets.enc.yaml", STATE_BUNDLE)
    missing = str(workdir / "x.snapshot.sops.json")
    result = run(workdir, {"adoptSecrets": True, "restoreFrom": missing}, expect_error=True)
    assert str(result.error).startswith(f"homelab:backup.restoreFrom = '{missing}'")
    assert result.of_type(VM) == [] and result.of_type(APPLY) == []
    assert [c for c in result.of_type(COMMAND) if c.name == "bootstrap-recover"] == []


def test_a_restore_without_the_escrowed_secrets_is_refused(workdir: Path) -> None:
    result = run(workdir, {"restoreFrom": str(snapshot(workdir))}, expect_error=True)
    assert "homelab:backup.restoreFrom" in str(result.error)
    assert "talos-secrets.enc.yaml" in str(result.error)
    assert result.registrations == []


# --- The recovery step, run by bash ------------------------------------------------------------

FAKE_TALOSCTL = """#!{python}
# Stand-in for talosctl: etcd reaches Preparing on the third look; calls are logged in order.
import os, shutil, sys
log = os.environ["FAKE_LOG"]
args = sys.argv[1:]
# The step's talos() passes the talosconfig as a process-substitution file.
talosconfig = open(args[args.index("--talosconfig") + 1]).read()
assert talosconfig == "context: homelab\\n", talosconfig
node = args[args.index("-n") + 1]
with open(log, "a") as handle:
    handle.write(" ".join(args[args.index("-e"):]) + "\\n")
if "service" in args:
    seen = os.path.join(os.path.dirname(log), "seen-" + node)
    count = int(open(seen).read()) + 1 if os.path.exists(seen) else 1
    open(seen, "w").write(str(count))
    never = os.environ.get("FAKE_NEVER_READY") == node
    state = "Preparing" if count >= 3 and not never else "Waiting"
    print("NODE   SERVICE   STATE   HEALTH   LAST CHANGE   LAST EVENT")
    print(node + "   apid   Running   OK   1m   Health check successful")
    print(node + "   etcd   " + state + "   ?   1m   Waiting for bootstrap")
elif "bootstrap" in args:
    source = args[args.index("--recover-from") + 1]
    shutil.copy(source, os.path.join(os.path.dirname(log), "recovered.snapshot"))
"""
CONTROLPLANES = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def run_step(workdir: Path, snap: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run the step's text as pulumi-command would: bash -c, the environment, stdin."""
    path = stub_path(
        workdir / "fakebin",
        {
            "talosctl": FAKE_TALOSCTL.format(python=sys.executable),
            # No waiting in a test: `sleep` is found here first.
            "sleep": "#!/bin/sh\n",
        },
        f"{SOPS.parent}{os.pathsep}{os.environ['PATH']}",
    )
    env = {
        **os.environ,
        "PATH": path,
        "FAKE_LOG": str(workdir / "talosctl.log"),
        "RECOVER_SNAPSHOT": str(snap),
        **extra,
    }
    talosconfig = base64.b64encode(b"context: homelab\n").decode()
    return subprocess.run(
        [*steps.INTERPRETER, steps.recover(CONTROLPLANES[0], CONTROLPLANES)],
        input=f"{talosconfig}\n\n\n",
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=workdir,
    )


def test_recovery_waits_for_every_member_in_preparing_then_bootstraps_once(workdir: Path) -> None:
    snap = snapshot(workdir, b"the snapshot bytes")
    result = run_step(workdir, snap)
    assert result.returncode == 0, result.stderr
    calls = (workdir / "talosctl.log").read_text().splitlines()
    bootstraps = [c for c in calls if "bootstrap" in c]
    assert len(bootstraps) == 1
    assert bootstraps[0].startswith("-e 10.0.0.1 -n 10.0.0.1 bootstrap --recover-from ")
    # Three looks at each control plane, all before the bootstrap.
    assert [c.split()[3] for c in calls[:-1]] == [ip for ip in CONTROLPLANES for _ in range(3)]
    assert calls[-1] == bootstraps[0]
    # talosctl got the decrypted snapshot, from a private temp dir removed afterwards.
    assert (workdir / "recovered.snapshot").read_bytes() == b"the snapshot bytes"
    assert not Path(bootstraps[0].split()[-1]).exists()


def test_recovery_gives_up_when_a_member_never_waits(workdir: Path) -> None:
    snap = snapshot(workdir)
    # bash takes SECONDS from the environment: the wait's budget is already spent.
    result = run_step(workdir, snap, FAKE_NEVER_READY="10.0.0.1", SECONDS="100000")
    assert result.returncode != 0
    assert "etcd on 10.0.0.1 never waited in Preparing" in result.stderr
    assert "bootstrap" not in (workdir / "talosctl.log").read_text()
