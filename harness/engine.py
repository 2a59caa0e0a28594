"""Run the whole Pulumi program under mocks and record what it registered, with every option.

The stock MockMonitor hands mocks only type, name and inputs; the recording monitor keeps the
rest of each registration (parent, dependencies, ignore_changes, retain_on_delete, the raw inputs
with their secret markers) so tests can assert on the graph the engine would see. It also records
what each invoke waits for (see RecordingMonitor.GetDeploymentInfo), and the recording engine
every message the program logs.
"""

from __future__ import annotations

import itertools
import runpy
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks, rpc
from pulumi.runtime.proto import engine_pb2, resource_pb2
from pulumi.runtime.settings import reset_options
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from harness.cliconfig import shim_config, wire_config
from harness.providers import HomelabMocks

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT = "homelab"  # Pulumi.yaml `name`: the namespace of unprefixed stack config keys
SECRET_SIG = rpc._special_sig_key
SECRET_VALUE = rpc._special_secret_sig


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    raw_inputs: dict[str, Any]
    dependencies: list[str]
    provider: str
    seq: int
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    ignore_changes: list[str] = field(default_factory=list)
    retain_on_delete: bool = False
    replace_on_changes: list[str] = field(default_factory=list)
    replace_with: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    state: dict[str, Any] = field(default_factory=dict)
    # A remote component (e.g. kubernetes:yaml/v2:ConfigFile) is built by its provider: its
    # children never reach the monitor, so a dependency on it is a dependency on it as a whole.
    remote: bool = False
    # The ID an `import_` option asked the engine to adopt ("" for a create).
    import_id: str = ""


@dataclass
class Invocation:
    token: str
    # As the provider receives them: keys exactly as on the wire (deserialize_properties renames
    # nothing), secrets already unwrapped by the SDK before it sends an invoke.
    args: dict[str, Any]
    seq: int
    # URNs the invoke waited for: its depends_on plus its inputs' dependencies, components
    # expanded to their children, exactly as the SDK sends them to the engine.
    dependencies: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LogEntry:
    severity: str  # engine_pb2.LogSeverity name: DEBUG, INFO, WARNING, ERROR
    message: str
    urn: str  # of the resource the message is attached to; "" for none


class RecordingEngine(mocks.MockEngine):
    """The engine's Log RPC, as `pulumi.log.*` calls it, keeping every message."""

    def __init__(self) -> None:
        super().__init__(None)
        self.logs: list[LogEntry] = []

    def Log(self, request: Any) -> None:  # noqa: N802  (gRPC method name)
        severity = engine_pb2.LogSeverity.Name(request.severity)
        self.logs.append(LogEntry(severity, request.message, request.urn))
        super().Log(request)


class RecordingMonitor(mocks.MockMonitor):
    def __init__(self, mock: mocks.Mocks) -> None:
        super().__init__(mock)
        self.registrations: list[Registration] = []
        self.invocations: list[Invocation] = []
        self._lock = threading.Lock()
        self._seq = itertools.count()

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802  (gRPC method name)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self._record(
                request,
                response,
                request.object,
                custom=request.custom,
                property_dependencies={
                    key: list(deps.urns) for key, deps in request.propertyDependencies.items()
                },
                ignore_changes=list(request.ignoreChanges),
                retain_on_delete=request.retainOnDelete,
                remote=request.remote,
                replace_on_changes=list(request.replaceOnChanges),
                replace_with=list(request.replace_with),
                delete_before_replace=request.deleteBeforeReplace,
                import_id=request.importId,
            )
        return response

    def ReadResource(self, request: Any) -> Any:  # noqa: N802  (gRPC method name)
        """A read (the program's StackReference) is part of the graph too: record it."""
        response = super().ReadResource(request)
        self._record(request, response, request.properties, custom=True)
        return response

    def _record(self, request: Any, response: Any, properties: Any, **options: Any) -> None:
        """What registrations and reads share, plus the options only the request kind carries."""
        registration = Registration(
            type=request.type,
            name=request.name,
            urn=response.urn,
            parent=request.parent,
            inputs=unwrap_secrets(rpc.deserialize_properties(properties)),
            raw_inputs=json_format.MessageToDict(properties),
            dependencies=list(request.dependencies),
            provider=request.provider,
            seq=next(self._seq),
            state=self.resources[response.urn].state,
            **options,
        )
        with self._lock:
            self.registrations.append(registration)

    def GetDeploymentInfo(self, request: Any) -> Any:  # noqa: N802  (gRPC method name)
        """Advertise invoke dependencies, as the real engine does.

        With it, the SDK names on each output-form invoke the URNs it must wait for (`dependsOn`)
        and leaves the waiting to the engine; without it the SDK only checks their IDs and the
        request carries no dependencies. Invoke below records them and applies the engine's gate.
        """
        info = super().GetDeploymentInfo(request)
        info.supportedFeatures.append(resource_pb2.RESOURCE_MONITOR_FEATURE_INVOKE_DEPENDS_ON)
        return info

    def Invoke(self, request: Any) -> Any:  # noqa: N802  (gRPC method name)
        dependencies = list(request.dependsOn)
        # The engine runs an invoke only once all it depends on is registered. Registration here
        # completes inside RegisterResource, so the gate is a check: a miss is an SDK/harness bug.
        pending = [urn for urn in dependencies if urn not in self.resources]
        if pending:
            raise AssertionError(f"invoke {request.tok} ran before {pending} were registered")
        with self._lock:
            self.invocations.append(
                Invocation(
                    token=request.tok,
                    args=rpc.deserialize_properties(request.args),
                    seq=next(self._seq),
                    dependencies=dependencies,
                )
            )
        return super().Invoke(request)


@dataclass
class ProgramRun:
    registrations: list[Registration]
    invocations: list[Invocation]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    error: BaseException | None = None
    logs: list[LogEntry] = field(default_factory=list)

    def of_type(self, kind: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == kind]

    def one(self, kind: str, name: str) -> Registration:
        matches = [r for r in self.of_type(kind) if r.name == name]
        assert len(matches) == 1, f"expected one {kind} named {name}, found {len(matches)}"
        return matches[0]

    def by_urn(self, urn: str) -> Registration:
        return next(r for r in self.registrations if r.urn == urn)

    def invoked(self, token: str) -> list[Invocation]:
        return [i for i in self.invocations if i.token == token]

    def all_dependencies(self, registration: Registration) -> set[str]:
        """URNs a resource waits for: explicit depends_on plus every input's dependencies."""
        direct = set(registration.dependencies)
        for urns in registration.property_dependencies.values():
            direct.update(urns)
        return direct

    def waits_for(self, later: Registration, earlier: Registration) -> bool:
        """True when `later` transitively depends on `earlier`."""
        seen: set[str] = set()
        stack = list(self.all_dependencies(later))
        while stack:
            urn = stack.pop()
            if urn == earlier.urn:
                return True
            if urn in seen:
                continue
            seen.add(urn)
            known = [r for r in self.registrations if r.urn == urn]
            for registration in known:
                stack.extend(self.all_dependencies(registration))
                # A component's dependency stands for all of its children.
                stack.extend(r.urn for r in self.registrations if r.parent == urn)
        return False


# What the `program` and `stack_file` fixtures hand a test: run the program, get its run.
Program = Callable[..., ProgramRun]


def unwrap_secrets(value: Any) -> Any:
    """Inputs as the provider would read them: secret markers removed (raw_inputs keeps them)."""
    if isinstance(value, Mapping):
        if value.get(SECRET_SIG) == SECRET_VALUE:
            return unwrap_secrets(value["value"])
        return {key: unwrap_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(item) for item in value]
    return value


def plain_strings(value: Any) -> Iterator[str]:
    """Every string in raw (serialized) inputs that is NOT inside a secret wrapper."""
    if isinstance(value, Mapping):
        if value.get(SECRET_SIG) == SECRET_VALUE:
            return
        for item in value.values():
            yield from plain_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from plain_strings(item)
    elif isinstance(value, str):
        yield value


def run_program(
    config: Mapping[str, Any],
    preview: bool = False,
    expect_error: bool | None = False,
    provider_mocks: mocks.Mocks | None = None,
) -> ProgramRun:
    """Evaluate __main__.py with the given stack config, as `pulumi preview` or `pulumi up` would.

    `config` holds values as the CLI reads them from Pulumi.<stack>.yaml (harness/cliconfig.py
    load_stack_file; keys without a namespace are `homelab:` keys); they reach the program in the
    CLI's encoding, through the language host's shim. An error the program raises is re-raised;
    with expect_error=True it is required instead, and with None merely allowed: either way it is
    kept in the result together with whatever was registered before it.
    provider_mocks replaces the stateless stand-ins (harness/lifecycle.py passes one that knows
    the previous run).
    """
    reset_options()
    stand_ins = provider_mocks or HomelabMocks()
    monitor = RecordingMonitor(stand_ins)
    mocks.set_mocks(stand_ins, project=PROJECT, stack="homelab", preview=preview, monitor=monitor)
    # set_mocks installs a MockEngine that only forwards to a logger; keep the messages instead.
    # (setattr, as settings.configure does it: the attribute is a context-variable property.)
    engine = RecordingEngine()
    setattr(pulumi.runtime.settings.SETTINGS, "engine", engine)  # noqa: B010

    def program() -> None:
        runpy.run_path(str(PROJECT_ROOT / "__main__.py"), run_name="__main__")

    try:
        with shim_config(wire_config(config, PROJECT)):
            _sync_await(run_pulumi_func(program))
    except Exception as error:
        if expect_error is False:
            raise
        return ProgramRun(
            list(monitor.registrations), list(monitor.invocations), {}, set(), error, engine.logs
        )
    if expect_error:
        raise AssertionError("the program was expected to fail but evaluated cleanly")
    root = pulumi.runtime.settings.get_root_resource()
    raw_outputs = {
        name: pulumi.Output.from_input(value)
        for name, value in getattr(root, "outputs", {}).items()
    }
    outputs = {name: _sync_await(out.future()) for name, out in raw_outputs.items()}
    secret_outputs = {name for name, out in raw_outputs.items() if _sync_await(out.is_secret())}
    return ProgramRun(
        registrations=list(monitor.registrations),
        invocations=list(monitor.invocations),
        outputs=outputs,
        secret_outputs=secret_outputs,
        logs=engine.logs,
    )
