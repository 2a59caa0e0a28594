"""README "Backup and restore", followed step by step against the lifecycle simulation.

The steps, the commands and the settings are read out of README.md and .mise.toml, so this test
breaks when either drifts from what the other says or from what the program does. Where a step is
a mise task, its shell text is run by bash (the real `sops`; a stand-in `pulumi` that answers
`stack output` from the simulated stack); `pulumi config set --path` is applied to the stack
config as the CLI does it; `pulumi up` is a run of harness/lifecycle.py.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster import steps
from harness.engine import PROJECT_ROOT
from harness.environment import ProgramEnvironment, ha_config, node_values
from harness.lifecycle import Lifecycle, RunResult
from harness.tokens import BOOTSTRAP, DEPLOY_KEY, KUSTOMIZATION, SECRET, SECRETS
from settings.backup import SNAPSHOT_SUFFIXES
from settings.escrow import ADOPT_DIR
from tests.mise import mise, task_script
from tests.real_sops import decrypt, encrypt
from tests.stubs import stub_path
from tests.test_lifecycle_restore import client_ca
from tests.test_restore import run_step
from tests.test_secrets_escrow import other_bundle, run_escrow_command

Config = dict[str, Any]
STAMP = "20260101T000000Z"
# As `kubectl get secret -o yaml` writes it (what `mise run cert:export` encrypts).
CERTIFICATE = {
    "apiVersion": "v1",
    "kind": "Secret",
    "type": "kubernetes.io/tls",
    "metadata": {"name": "wildcard-tls", "namespace": "traefik"},
    "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"},  # pragma: allowlist secret
}


# --- What the README and .mise.toml say -------------------------------------------------------


def readme_section(heading: str) -> str:
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text[text.index(f"\n## {heading}\n") + 1 :]
    return section[: section.index("\n## ", 1)]


def restore_steps() -> list[str]:
    """The numbered steps of "Restore a lost cluster, step by step", each on one line."""
    section = readme_section("Backup and restore")
    start = section.index("**Restore a lost cluster, step by step**")
    listing = section[start:].split("\n\n")[1]
    items = re.split(r"\n(?=\d+\. )", listing)
    assert [int(item.split(".", 1)[0]) for item in items] == list(range(1, len(items) + 1))
    return [re.sub(r"\s+", " ", item.split(". ", 1)[1]) for item in items]


def code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def mise_runs(span: str) -> list[list[str]]:
    """`mise run a && mise run b x` → [["a"], ["b", "x"]]; every task must exist."""
    runs = []
    for part in span.split("&&"):
        words = shlex.split(part)
        assert words[:2] == ["mise", "run"], span
        assert words[2] in mise()["tasks"], (
            f"README names mise task {words[2]}, .mise.toml lacks it"
        )
        runs.append(words[2:])
    return runs


def config_sets(script: str, arguments: dict[str, str]) -> list[tuple[str, Any]]:
    """Each `pulumi config set --path KEY VALUE` of a task, its value typed as the CLI stores it:
    `--type bool` parses a bool; under `--path`, "true"/"false" are bools, integers numbers,
    anything else text (pulumi/pulumi pkg/cmd/pulumi/config/config.go, newConfigSetCmd)."""
    found = []
    for line in script.splitlines():
        words = shlex.split(line.strip()) if line.strip().startswith("pulumi config set") else []
        if not words:
            continue
        assert "--path" in words and words[words.index("--stack") + 1] == "homelab", line
        typed = words[words.index("--type") + 1] if "--type" in words else None
        key, raw = [w for w in words[3:] if not w.startswith("--") and w not in ("homelab", typed)]
        value = re.sub(r"\$\{?(\w+)\}?", lambda m: arguments[m[1]], raw)
        if typed == "bool" or value in ("true", "false"):
            found.append((key, value == "true"))
        else:
            found.append((key, int(value) if value.isdigit() else value))
    return found


def apply_config_set(config: Config, key: str, value: Any) -> Config:
    """`pulumi config set --path homelab:a.b value` on the stack config (namespace stripped)."""
    namespace, path = key.split(":", 1)
    assert namespace == "homelab", key
    edited = copy.deepcopy(config)
    *parents, leaf = path.split(".")
    node = edited
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return edited


def run_task(
    name: str, workdir: Path, environment: ProgramEnvironment, outputs: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    """A task's script under bash, in the repository directory, with the real sops and a
    `pulumi` that answers `stack output --show-secrets NAME` from the simulated stack."""
    bin_dir = workdir / "fakebin-pulumi"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "outputs.yaml").write_text(yaml.safe_dump(outputs))
    fake = (
        f"#!{sys.executable}\n"
        "import sys, yaml\n"
        "args = sys.argv[1:]\n"
        "assert args[:2] == ['stack', 'output'] and '--show-secrets' in args, args\n"
        f"outputs = yaml.safe_load(open({str(bin_dir / 'outputs.yaml')!r}))\n"
        "sys.stdout.write(outputs[args[-1]])\n"
    )
    return subprocess.run(
        ["/bin/bash", "-c", task_script(name)],
        env={**os.environ, "PATH": stub_path(bin_dir, {"pulumi": fake}, environment.path())},
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )


# --- Snapshots as the cluster writes them -------------------------------------------------------


def cronjob_snapshot(pod: Path, recipient: str, content: bytes) -> Path:
    """Run the backup CronJob's encrypt-and-store script (kubernetes/infrastructure-config/
    etcd-backup/cronjob.yaml) by sh, its /work and /backups mounts moved under `pod`, a directory
    with no .sops.yaml above it, as in the container; returns the file it left on the "NAS"."""
    cronjob = yaml.safe_load(
        (PROJECT_ROOT / "kubernetes/infrastructure-config/etcd-backup/cronjob.yaml").read_text()
    )
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    script = container["args"][0]
    nas, work = pod / "nas", pod / "work"
    nas.mkdir()
    work.mkdir()
    (work / "etcd.snapshot").write_bytes(content)
    script = script.replace("/backups", str(nas)).replace("/work/", f"{work}/")
    subprocess.run(
        ["/bin/sh", "-c", script],
        env={**os.environ, "AGE_RECIPIENT": recipient, "RETENTION_DAYS": "14"},
        cwd=work,
        check=True,
        capture_output=True,
    )
    (found,) = (nas / "etcd-backups").iterdir()
    return found


def pre_upgrade_snapshot(workdir: Path, content: bytes) -> Path:
    """Run the snapshot lines of the Talos upgrade step (cluster/steps.py etcd_snapshot) by bash
    in the repository directory, with the committed .sops.yaml rules and a stand-in talosctl."""
    bin_dir = workdir / "fakebin-snapshot"
    bin_dir.mkdir()
    (bin_dir / "etcd.db").write_bytes(content)
    fake = f'#!/bin/sh\n[ "$7 $8" = "etcd snapshot" ] && cp "{bin_dir}/etcd.db" "$9"\n'
    result = subprocess.run(
        ["/bin/bash", "-c", steps.script(*steps.etcd_snapshot("10.0.0.1"))],
        input="Y29udGV4dDogaG9tZWxhYgo=\n\n\n",
        env={
            **os.environ,
            "PATH": stub_path(bin_dir, {"talosctl": fake}, os.environ["PATH"]),
            "TALOS_VERSION": "v1.12.4",
        },
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (found,) = (workdir / steps.SNAPSHOT_DIR).iterdir()
    return found


# --- The walk-through -------------------------------------------------------------------------


def first_cluster(workdir: Path, secrets_file: Path, config: Config) -> RunResult:
    """The cluster before the bad day: created by `mise run up`, its escrow files written."""
    created = Lifecycle(str(secrets_file)).up(config)
    assert created.error is None, created.error
    assert created.program is not None
    run_escrow_command(created.program, workdir)
    run_escrow_command(created.program, workdir, "flux-deploy-key-escrow")
    return created


@dataclass
class Walk:
    """The operator's repository directory, the old stack's last run, and the new stack."""

    workdir: Path
    environment: ProgramEnvironment
    created: RunResult
    stack: Lifecycle


def step_1_setup(text: str) -> None:
    """A fresh clone: the age key where mise points sops, the passphrase, trust, setup."""
    spans = code_spans(text)
    assert "mise trust" in spans, "a fresh clone's mise runs no task before `mise trust`"
    runs = [run for span in spans if span.startswith("mise run") for run in mise_runs(span)]
    assert ["setup"] in runs
    assert ".age-key.txt" in spans
    assert mise()["env"]["SOPS_AGE_KEY_FILE"] == "{{config_root}}/.age-key.txt"
    # setup makes a passphrase only where none is (then Pulumi checks it against the salt).
    assert ".pulumi-passphrase" in spans and "encryptionsalt:" in spans
    assert '[[ ! -s "$PULUMI_CONFIG_PASSPHRASE_FILE" ]]' in task_script("setup")


def step_3_copy_snapshot(text: str, walk: Walk, on_nas: Path) -> Path:
    """The snapshot, copied from the NAS's etcd-backups/ into the repository, kept out of git."""
    spans = code_spans(text)
    assert "etcd-backups/" in spans and "*.snapshot.sops.json" in spans
    assert on_nas.parent.name == "etcd-backups"
    assert re.fullmatch(r"etcd-\d{8}T\d{6}Z\.snapshot\.sops\.json", on_nas.name)
    local = walk.workdir / on_nas.name
    shutil.copy(on_nas, local)
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", f"etcd-{STAMP}.snapshot.sops.json"],
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert ignored.returncode == 0, ".gitignore does not keep snapshots out"
    return local


def step_4_restore(text: str, walk: Walk, local: Path) -> tuple[Config, RunResult]:
    """`mise run restore ./etcd-<time>.snapshot.sops.json`: the settings it names, `pulumi up`."""
    spans = code_spans(text)
    (restore_span,) = [span for span in spans if span.startswith("mise run restore")]
    ((task, argument),) = mise_runs(restore_span.replace("<time>", local.name[5:21]))
    assert argument == f"./{local.name}"
    script = task_script(task)
    assert re.search(r'arg "<snapshot>"', mise()["tasks"][task]["usage"])
    sets = config_sets(script, {"snapshot": argument, "usage_snapshot": argument})
    assert [key for key, _ in sets] == [s for s in spans if s.startswith("homelab:backup.")]
    assert script.strip().splitlines()[-1] == "pulumi up --stack homelab"
    config = ha_config()
    for key, value in sets:
        config = apply_config_set(config, key, value)
    restored = walk.stack.up(config)
    assert restored.error is None, restored.error
    return config, restored


def assert_restored(walk: Walk, restored: RunResult, local: Path) -> None:
    """What step 4 says the operator will see."""
    created, program = walk.created.program, restored.program
    assert created is not None and program is not None
    # The escrowed secrets are imported, through the named pipe in .pulumi-adopt/, not generated;
    # the talosconfig and the kubeconfig trust the old CAs.
    assert restored.op(SECRETS, "machine-secrets") == "import"
    (secrets,) = program.of_type(SECRETS)
    assert Path(secrets.import_id).parent.name == ADOPT_DIR.name
    assert client_ca(program) == client_ca(created)
    # The escrowed deploy key is reused: no new key, the one the Git host knows.
    assert program.of_type(DEPLOY_KEY) == []
    assert program.outputs["deployKeyPublic"] == created.outputs["deployKeyPublic"]
    # The VMs are created (with the old IDs: step 2), configured, and etcd is recovered, not
    # bootstrapped: after etcd waits in Preparing on every control plane, once, on the first.
    assert program.outputs["vmIds"] == created.outputs["vmIds"]
    ha = ha_config()
    assert sorted(e[1] for e in restored.of("vm-create")) == sorted(node_values(ha))
    controlplanes = node_values(ha, "controlplane")
    assert restored.op(BOOTSTRAP, "bootstrap") == "absent" and restored.of("bootstrap") == []
    (recovery,) = restored.of("bootstrap-recover")
    assert recovery == ("bootstrap-recover", controlplanes[0])
    at = restored.events.index(recovery)
    assert [e[1] for e in restored.events[:at] if e[0] == "etcd-preparing"] == controlplanes
    assert ("decrypt-snapshot", str(local.resolve())) in restored.events[:at]
    # Then the day-two steps and the health gate, and Flux gets its layers.
    assert ("health",) in restored.events[at:]
    walk.stack.world.check_health(
        node_values(ha, "controlplane", "ip"),
        node_values(ha, "worker", "ip"),
    )
    # The wildcard certificate is put back (the table: "on a rebuild (`adoptSecrets`)").
    assert restored.op(SECRET, "wildcard-certificate") == "create"
    layers = {r.name for r in program.of_type(KUSTOMIZATION)}
    assert layers and all(restored.op(KUSTOMIZATION, name) == "create" for name in layers)


def step_5_access_and_later_runs(
    text: str, walk: Walk, config: Config, restored: RunResult, local: Path
) -> None:
    """`mise run config:export && mise run config:decrypt`; restoreFrom and adoptSecrets stay."""
    assert restored.program is not None
    outputs = restored.program.outputs
    spans = code_spans(text)
    (access,) = [span for span in spans if span.startswith("mise run config:")]
    for (task_name,) in mise_runs(access):
        done = run_task(task_name, walk.workdir, walk.environment, outputs)
        assert done.returncode == 0, done.stderr
    for name in ("talosconfig", "kubeconfig"):
        exported = outputs[name].rstrip("\n")
        assert (walk.workdir / name).read_text().rstrip("\n") == exported
        assert decrypt(walk.workdir / f"{name}.enc.yaml")
    # Left set, the recovery never runs again: not on a plain run, not when a node is added.
    assert {"restoreFrom", "adoptSecrets"} <= set(spans)
    again = walk.stack.up(config)
    assert again.error is None, again.error
    assert again.changed() == {}
    # "Commit the stack config", not the snapshot: "once it succeeded, delete the copy; other
    # clones do without it" (the recovery step, in state, never reads it again).
    assert "delete the copy; other clones do without it" in text
    local.unlink()
    grown = copy.deepcopy(config)
    extra = {"name": "talos-extra", "ip": "192.168.20.120", "mac": "BC:24:11:00:00:99"}
    grown["nodes"].append({**grown["nodes"][-1], **extra, "vmId": 999})
    added = walk.stack.up(grown)
    assert added.error is None, added.error
    assert added.of("bootstrap-recover") == [] and ("vm-create", "talos-extra") in added.events
    # Removing restoreFrom swaps the step for a plain bootstrap, which fails on a running etcd.
    del grown["backup"]["restoreFrom"]
    swapped = walk.stack.up(grown)
    assert swapped.op(BOOTSTRAP, "bootstrap") == "create"
    assert "etcd already has members" in str(swapped.error)


def test_the_readme_restore_steps_rebuild_a_lost_cluster(
    workdir: Path,
    secrets_file: Path,
    environment: ProgramEnvironment,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    steps_text = restore_steps()
    assert len(steps_text) == 5, steps_text
    created = first_cluster(workdir, secrets_file, ha_config())
    # `mise run cert:export` (part of provision) left the wildcard certificate escrowed.
    encrypt(workdir / "wildcard-tls.enc.yaml", CERTIFICATE)
    content = b"etcd as it was at the last snapshot"
    on_nas = cronjob_snapshot(tmp_path_factory.mktemp("pod"), environment.recipient, content)

    step_1_setup(steps_text[0])
    # 2. The old VMs are gone: the new stack starts on an empty Proxmox.
    walk = Walk(workdir, environment, created, Lifecycle(str(secrets_file)))
    assert walk.stack.world.machines == {}
    local = step_3_copy_snapshot(steps_text[2], walk, on_nas)
    config, restored = step_4_restore(steps_text[3], walk, local)
    assert_restored(walk, restored, local)
    # What the recovery step decrypts is the snapshot the CronJob took (its text, run by bash).
    recovered = run_step(workdir, local)
    assert recovered.returncode == 0, recovered.stderr
    assert (workdir / "recovered.snapshot").read_bytes() == content
    step_5_access_and_later_runs(steps_text[4], walk, config, restored, local)


def test_a_snapshot_taken_before_a_talos_upgrade_restores_as_well(workdir: Path) -> None:
    """Step 3: "A snapshot the program took before a Talos upgrade (backups/etcd/etcd-<time>-
    <version>.enc.db) works as well": the upgrade step writes it with the committed .sops.yaml
    rules, and the recovery step decrypts it."""
    (three,) = [s for s in restore_steps() if "before a Talos upgrade" in s]
    assert "backups/etcd/etcd-<time>-<version>.enc.db" in code_spans(three)
    taken = pre_upgrade_snapshot(workdir, b"etcd before the upgrade")
    assert re.fullmatch(r"etcd-\d{8}T\d{6}Z-v1\.12\.4\.enc\.db", taken.name)
    assert taken.name.endswith(SNAPSHOT_SUFFIXES)
    assert b"etcd before the upgrade" not in taken.read_bytes()
    recovered = run_step(workdir, taken)
    assert recovered.returncode == 0, recovered.stderr
    assert (workdir / "recovered.snapshot").read_bytes() == b"etcd before the upgrade"


def test_an_escrow_file_of_another_cluster_stops_the_run_before_any_node(
    workdir: Path, secrets_file: Path
) -> None:
    """README: when the escrow file and the state disagree (another cluster's file), `pulumi up`
    stops before touching any node and names the differing fields."""
    section = readme_section("Backup and restore")
    said = "stops before any node gets a config (new VMs may already have been created)"
    assert said in re.sub(r"\s+", " ", section)
    # The harness' Secrets stand-in generates the same values every time: the file is another's.
    encrypt(workdir / "talos-secrets.enc.yaml", other_bundle())
    rebuilt = Lifecycle(str(secrets_file))
    result = rebuilt.up(ha_config())
    assert result.error is not None
    assert "differing: cluster.secret, certs.etcd.crt" in str(result.error)
    # VM creation and local escrow writes (the deploy key's) may happen; nothing reaches a node.
    touched = [e for e in rebuilt.world.events if e[0] not in ("vm-create", "escrow")]
    assert touched == [], touched
    # VMs may boot the ISO into maintenance mode; no config reached them.
    assert not any(m.installed for m in rebuilt.world.machines.values())


def test_the_escrow_files_are_written_when_the_secrets_are_made_not_on_every_run(
    workdir: Path, secrets_file: Path
) -> None:
    """The table and the configuration reference: the `up` that creates (or changes) the secrets
    and the deploy key writes their escrow files; a run that changes neither writes nothing
    (pulumi-command re-runs `create` only when an input moved)."""
    row = next(
        line
        for line in readme_section("Backup and restore").splitlines()
        if line.startswith("| Talos machine secrets")
    )
    assert "the `mise run up` that creates them (or changes them)" in row
    reference = readme_section("Configuration reference")
    assert "written by the `up` that creates or changes them" in reference
    stack = Lifecycle(str(secrets_file))
    created = stack.up(ha_config())
    assert created.error is None, created.error
    escrows = {("escrow", "talos-secrets.enc.yaml"), ("escrow", "flux-deploy-key.enc.yaml")}
    assert escrows <= set(created.events)
    again = stack.up(ha_config())
    assert again.error is None, again.error
    assert again.of("escrow") == [], again.changed()
