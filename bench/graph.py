"""The dependency graph a `pulumi up` walks, rebuilt from one recorded program run.

Engine edges: what each resource waits for before the engine starts it — its explicit
depends_on, every input's dependencies, its explicit provider — plus the health invoke, which
the engine runs only after its own dependencies and which the Kubernetes provider waits for.
Flux edges: waits the Pulumi graph does not show. Pulumi creates the Flux objects in parallel
and waits for each to be Ready, but Flux reconciles a Kustomization only after its source and
the layers it dependsOn are Ready; those edges come from gitops.layers, so the estimate follows
the layer graph whatever it becomes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache

from bench.weights import GIT_REPOSITORY, HEALTH, KUSTOMIZATION
from gitops.layers import LAYERS, SOURCE_NAME
from harness.engine import Invocation, ProgramRun, Registration

# The invokes modelled as steps of their own. getHealth is the only one that waits for anything
# but inputs (depends_on: bootstrap and every config apply) and the only slow one. The
# others (image URLs, machine and client configs) are local or one HTTP GET, and whatever
# consumes their results already waits for their inputs, which the SDK passes on with the result.
MODELLED_INVOKES = frozenset({HEALTH})


@dataclass(frozen=True)
class Step:
    key: str  # the URN, or token@seq for an invoke
    name: str
    kind: str  # the Pulumi type token, or the invoke token
    # A Kubernetes object's metadata.name, else the Pulumi resource name (what estimates key on).
    object_name: str | None


@dataclass
class DependencyGraph:
    steps: dict[str, Step]
    # step -> steps it waits for; engine_waits is the Pulumi graph, flux_waits the Flux side.
    engine_waits: dict[str, set[str]]
    flux_waits: dict[str, set[str]]

    def of_kind(self, kind: str) -> list[Step]:
        return sorted((s for s in self.steps.values() if s.kind == kind), key=lambda s: s.name)

    def ancestors(self, key: str) -> set[str]:
        """Every step `key` waits for in the Pulumi graph, directly or not."""
        seen: set[str] = set()
        stack = list(self.engine_waits[key])
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.engine_waits[current])
        return seen

    def longest_chain(
        self, weight: Callable[[Step], float], with_flux: bool
    ) -> tuple[float, list[Step]]:
        """The heaviest chain of waits, first step first. Ties go to the first name A-Z."""
        waits = self._waits(with_flux)
        visiting: set[str] = set()

        @cache
        def heaviest(key: str) -> tuple[float, tuple[str, ...]]:
            if key in visiting:
                raise ValueError(f"dependency cycle through {self.steps[key].name}")
            visiting.add(key)
            before = [heaviest(dep) for dep in sorted(waits[key], key=self._rank)]
            visiting.discard(key)
            # max() keeps the first of equals. Not registration order: that varies run to run.
            total, chain = max(before, key=lambda found: found[0], default=(0.0, ()))
            return total + weight(self.steps[key]), (*chain, key)

        ends = [heaviest(key) for key in sorted(self.steps, key=self._rank)]
        total, chain = max(ends, key=lambda found: found[0])
        return total, [self.steps[key] for key in chain]

    def _waits(self, with_flux: bool) -> dict[str, set[str]]:
        if not with_flux:
            return self.engine_waits
        return {
            key: deps | self.flux_waits.get(key, set()) for key, deps in self.engine_waits.items()
        }

    def _rank(self, key: str) -> tuple[str, str]:
        return self.steps[key].name, key


def build_graph(run: ProgramRun) -> DependencyGraph:
    expand = _component_expander(run.registrations)
    registered = {r.urn for r in run.registrations}
    steps: dict[str, Step] = {}
    engine_waits: dict[str, set[str]] = {}
    for registration in run.registrations:
        # A local component is no step: a dependency on it is one on its children (expand).
        if registration.custom or registration.remote:
            steps[registration.urn] = _resource_step(registration)
            engine_waits[registration.urn] = expand(_waited_urns(registration, run, registered))
    for invocation in run.invocations:
        if invocation.token in MODELLED_INVOKES:
            step = _invoke_step(invocation)
            steps[step.key] = step
            engine_waits[step.key] = expand(invocation.dependencies)
            for dependent in _invoke_consumers(invocation, run):
                engine_waits[dependent.urn].add(step.key)
    return DependencyGraph(steps=steps, engine_waits=engine_waits, flux_waits=_flux_waits(steps))


def _waited_urns(registration: Registration, run: ProgramRun, registered: set[str]) -> set[str]:
    urns = run.all_dependencies(registration)
    if registration.provider:
        # A provider reference is "urn::id". Default providers are made by the engine and never
        # registered under mocks; only an explicit provider is a step to wait for.
        provider_urn = registration.provider.rsplit("::", 1)[0]
        if provider_urn in registered:
            urns.add(provider_urn)
    return urns


def _invoke_consumers(invocation: Invocation, run: ProgramRun) -> list[Registration]:
    """The registrations that waited for the invoke's result.

    The RPC does not say who consumed a result, but the SDK hands an output-form invoke's result
    on carrying the invoke's dependencies, and a consumer can only register after the invoke
    returned. So: registered later, and its dependencies include all of the invoke's.
    """
    gate = set(invocation.dependencies)
    if not gate:
        raise ValueError(f"{invocation.token} waits for nothing: its consumers cannot be told")
    consumers = [
        r for r in run.registrations if r.seq > invocation.seq and gate <= run.all_dependencies(r)
    ]
    if not consumers:
        raise ValueError(f"nothing consumes {invocation.token}: update bench/graph.py")
    return consumers


def _component_expander(registrations: list[Registration]) -> Callable[[Iterable[str]], set[str]]:
    """URNs -> steps: a local component stands for all of its descendants, as Pulumi expands it."""
    by_urn = {r.urn: r for r in registrations}
    children: Mapping[str, list[str]] = defaultdict(list)
    for registration in registrations:
        children[registration.parent].append(registration.urn)

    def expand_one(urn: str) -> set[str]:
        registration = by_urn.get(urn)
        if registration is None:
            raise ValueError(f"dependency on {urn}, which was never registered")
        if registration.custom or registration.remote:
            return {urn}
        return {step for child in children[urn] for step in expand_one(child)}

    def expand(urns: Iterable[str]) -> set[str]:
        return {step for urn in urns for step in expand_one(urn)}

    return expand


def _flux_waits(steps: Mapping[str, Step]) -> dict[str, set[str]]:
    """Each layer waits for the Git source and for the layers it dependsOn (gitops.layers)."""
    by_object = {(s.kind, s.object_name): s.key for s in steps.values()}

    def find(kind: str, name: str) -> str:
        if (kind, name) not in by_object:
            raise ValueError(f"no {kind} named {name} was registered")
        return by_object[(kind, name)]

    source = find(GIT_REPOSITORY, SOURCE_NAME)
    return {
        find(KUSTOMIZATION, layer.name): {
            source,
            *(find(KUSTOMIZATION, needed) for needed in layer.depends_on),
        }
        for layer in LAYERS
    }


def _resource_step(registration: Registration) -> Step:
    metadata = registration.inputs.get("metadata")
    object_name = metadata.get("name") if isinstance(metadata, dict) else None
    return Step(
        key=registration.urn,
        name=registration.name,
        kind=registration.type,
        object_name=object_name if isinstance(object_name, str) else registration.name,
    )


def _invoke_step(invocation: Invocation) -> Step:
    function = invocation.token.rsplit(":", 1)[-1]
    return Step(
        key=f"{invocation.token}@{invocation.seq}",
        name=f"{function}()",
        kind=invocation.token,
        object_name=None,
    )
