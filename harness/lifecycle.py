"""Successive `pulumi up` runs of the real program against harness/world.py, state carried over.

Each run evaluates __main__.py under the mocks (harness.engine.run_program), then plays what the
engine would do with the registrations, as pulumi/pulumi's step generator does
(pkg/resource/deploy/step_generator.go): per URN, diff the new inputs against the previous run's
(`ignore_changes` keeps the old value), then create, update, replace (`replaceOnChanges`,
pulumi-command's `triggers`, `replace_with`, a `--replace` target) or leave it; resources gone
from the program are deleted after, dependents first. Steps run in registration order, a
topological order of the dependency graph (the SDK registers a resource once its inputs and
depends_on are known). A failing step stops the run: what ran is kept in state, the rest keeps
its previous state, and the stack outputs stay those of the last successful run.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pulumi.runtime import mocks

from harness.engine import SECRET_SIG, ProgramRun, Registration, run_program
from harness.providers import HomelabMocks
from harness.tokens import (
    APPLY,
    BOOTSTRAP,
    COMMAND,
    HEALTH,
    MACHINE_CONFIGURATION,
    STACK_REFERENCE,
    VM,
)
from harness.world import StepError, World


@dataclass
class Stored:
    type: str
    name: str
    inputs: dict[str, Any]
    state: dict[str, Any]
    dependencies: set[str]
    stdout: str = ""


@dataclass
class RunResult:
    ops: dict[str, str]  # resource name → create/update/replace/same/delete (type-qualified)
    events: list[tuple[str, ...]]
    error: BaseException | None
    program: ProgramRun | None

    def op(self, kind: str, name: str) -> str:
        return self.ops.get(f"{kind}::{name}", "absent")

    def changed(self) -> dict[str, str]:
        return {key: op for key, op in self.ops.items() if op != "same"}

    def of(self, kind: str) -> list[tuple[str, ...]]:
        return [event for event in self.events if event[0] == kind]


class LifecycleMocks(HomelabMocks):
    """The stand-ins, plus what depends on the stack and the world."""

    def __init__(self, outputs: Mapping[str, Any], world: World) -> None:
        super().__init__(stack_outputs=outputs)
        self.world = world

    def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        result, failures = super().call(args)
        if args.token == MACHINE_CONFIGURATION:
            # As Talos renders it: the kubelet image carries the Kubernetes version.
            version = args.args.get("kubernetesVersion") or "1.35.0"
            result["machineConfiguration"] += (
                f"machine:\n  kubelet:\n    image: ghcr.io/siderolabs/kubelet:v{version}\n"
            )
        # Invokes run while the program runs, before this run's changes reach the world: only a
        # node that is down now makes the check time out.
        if args.token == HEALTH and any(m.down for m in self.world.machines.values()):
            raise StepError("health: cluster not healthy within 20m")
        return result, failures


@dataclass
class Lifecycle:
    """One stack and its world, across runs."""

    secrets_file: str
    world: World = field(default_factory=World)
    resources: dict[str, Stored] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    def up(self, config: Mapping[str, Any], replace: Iterable[str] = ()) -> RunResult:
        config = {**copy.deepcopy(dict(config)), "secretsFile": self.secrets_file}
        nodes = {node["name"]: node for node in config["nodes"]}
        start = len(self.world.events)
        stand_ins = LifecycleMocks(self.outputs, self.world)
        program = run_program(config, expect_error=None, provider_mocks=stand_ins)
        ops: dict[str, str] = {}
        if program.error is not None:
            # The program itself failed: the engine stops, after what was already registered.
            self._execute(program, nodes, set(replace), ops, deletes=False)
            return RunResult(ops, self.world.events[start:], program.error, program)
        try:
            self._execute(program, nodes, set(replace), ops, deletes=True)
        except StepError as error:
            return RunResult(ops, self.world.events[start:], error, program)
        self.outputs = program.outputs
        return RunResult(ops, self.world.events[start:], None, program)

    # -- the engine's part ----------------------------------------------------------------
    def _execute(
        self,
        run: ProgramRun,
        nodes: dict[str, Any],
        replace: set[str],
        ops: dict[str, str],
        deletes: bool,
    ) -> None:
        """Carry out the run's operations, recording each into `ops` as it goes (so a step that
        fails leaves the ones before it recorded)."""
        replaced: set[str] = set()
        late_deletes: list[Stored] = []
        current = {r.urn for r in run.registrations}
        for reg in _adversarial_order(run):
            if not reg.custom or reg.type.startswith("pulumi:providers:") or reg.remote:
                continue
            if reg.type == STACK_REFERENCE:
                continue
            old = self.resources.get(reg.urn)
            inputs = _with_ignored(reg, old)
            op = _operation(reg, old, inputs, replaced, reg.name in replace)
            ops[f"{reg.type}::{reg.name}"] = op
            if op == "replace":
                replaced.add(reg.urn)
            new = Stored(reg.type, reg.name, inputs, reg.state, run.all_dependencies(reg))
            new.stdout = old.stdout if old and op == "same" else ""
            if op != "same":
                self._act(reg, op, old, new, nodes=nodes, late_deletes=late_deletes)
            self.resources[reg.urn] = new
        for old in late_deletes:
            self._delete(old)
        if deletes:
            for urn in _dependents_first(self.resources, set(self.resources) - current):
                old = self.resources[urn]
                ops[f"{old.type}::{old.name}"] = "delete"
                self._delete(old)
                del self.resources[urn]

    def _act(
        self,
        reg: Registration,
        op: str,
        old: Stored | None,
        new: Stored,
        *,
        nodes: dict[str, Any],
        late_deletes: list[Stored],
    ) -> None:
        world = self.world
        if op == "replace" and old is not None:
            if reg.delete_before_replace or reg.type == VM:
                # A VM keeps its Proxmox VM id: the old one must go first.
                self._delete(old)
            else:
                late_deletes.append(old)  # create-before-delete: the old one goes at the end
        if reg.type == VM:
            vm = {**new.inputs, "vmId": new.state["vmId"]}
            if op == "update" and old is not None:
                world.vm_updated(old.inputs, vm)
            else:
                node = nodes[vm["name"]]
                world.vm_created(vm, node["ip"], node["role"] == "controlplane")
        elif reg.type == APPLY:
            config = "\n---\n".join(
                [new.inputs["machineConfigurationInput"], *new.inputs["configPatches"]]
            )
            world.config_applied(new.inputs, config)
        elif reg.type == BOOTSTRAP:
            world.bootstrapped(new.inputs)
        elif reg.type == COMMAND:
            _require_secret_stdin(reg)
            text = new.inputs.get("create") if op != "update" else None
            if op == "update":
                text = new.inputs.get("update") or new.inputs.get("create")
            if text:
                previous = old.stdout if old and op == "update" else ""
                new.stdout = world.run_step(
                    reg.name, text, new.inputs.get("environment", {}), previous
                )

    def _delete(self, old: Stored) -> None:
        if old.type == VM:
            self.world.vm_deleted(old.inputs)
        elif old.type == COMMAND and old.inputs.get("delete"):
            self.world.run_step(
                old.name, old.inputs["delete"], old.inputs.get("environment", {}), old.stdout
            )


def _with_ignored(reg: Registration, old: Stored | None) -> dict[str, Any]:
    inputs = copy.deepcopy(reg.inputs)
    if old is None:
        return inputs
    for path in reg.ignore_changes:
        top = path.split(".")[0].split("[")[0]
        if top in old.inputs:
            inputs[top] = copy.deepcopy(old.inputs[top])
        else:
            inputs.pop(top, None)
    return inputs


def _operation(
    reg: Registration, old: Stored | None, inputs: dict[str, Any], replaced: set[str], forced: bool
) -> str:
    if old is None:
        # An `import_` adopts what exists (pulumi/pulumi step_generator.go: an import step).
        return "import" if reg.import_id else "create"
    changed = {key for key in {*inputs, *old.inputs} if inputs.get(key) != old.inputs.get(key)}
    replace_keys = set(reg.replace_on_changes)
    if reg.type == COMMAND:
        replace_keys.add("triggers")  # provider:"replaceOnChanges" (pulumi-command inputs.go)
    if forced or changed & replace_keys or replaced & set(reg.replace_with):
        return "replace"
    return "update" if changed else "same"


def _adversarial_order(run: ProgramRun) -> list[Registration]:
    """An order the engine could run them in: only dependencies constrain it (a dependency on a
    component stands for its children), and among the ready ones the last registered goes
    first, so an ordering the program expresses only by registering earlier does not hold."""
    registrations = run.registrations
    by_urn = {r.urn: r for r in registrations}
    children: dict[str, list[str]] = {}
    for r in registrations:
        children.setdefault(r.parent, []).append(r.urn)

    def expand(urns: Iterable[str]) -> set[str]:
        found: set[str] = set()
        stack = list(urns)
        while stack:
            urn = stack.pop()
            if urn in found or urn not in by_urn:
                continue
            found.add(urn)
            if not by_urn[urn].custom:
                stack.extend(children.get(urn, []))
        return found

    waits = {r.urn: expand(run.all_dependencies(r)) - {r.urn} for r in registrations}
    done: set[str] = set()
    order: list[Registration] = []
    left = sorted(registrations, key=lambda r: -r.seq)
    while left:
        ready = next(r for r in left if waits[r.urn] <= done)
        order.append(ready)
        done.add(ready.urn)
        left.remove(ready)
    return order


def _dependents_first(resources: Mapping[str, Stored], doomed: set[str]) -> list[str]:
    """Delete order: a resource goes only once nothing left to delete depends on it; among the
    ready ones, steps with a delete command go last (the engine runs independent deletes at
    once), so only a dependency keeps such a step ahead of its VM's destruction."""
    order: list[str] = []
    left = set(doomed)
    while left:
        ready = sorted(
            (urn for urn in left if not any(urn in resources[o].dependencies for o in left)),
            key=lambda urn: (bool(resources[urn].inputs.get("delete")), urn),
        )
        if not ready:
            raise AssertionError(f"dependency cycle among {sorted(left)}")
        order.append(ready[0])
        left.remove(ready[0])
    return order


def _require_secret_stdin(reg: Registration) -> None:
    stdin = reg.raw_inputs.get("stdin")
    if reg.inputs.get("stdin") and not (isinstance(stdin, dict) and SECRET_SIG in str(stdin)):
        raise AssertionError(f"{reg.name}: secrets must reach the step as a secret stdin")
