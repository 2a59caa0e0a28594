"""The input names the installed provider SDKs declare, read from the SDKs' own metadata.

Nothing here lists a property name. The sources, all of them the generated SDK code itself:
- a resource type token -> its class: the registry each generated SDK fills when imported
  (`_utilities.register` -> `pulumi.runtime.register_resource_module`/`_package`, whose entries
  carry the module and class name for every token);
- a resource class -> its inputs: the `@input_type` `...Args` class its `__init__` overload takes;
- an invoke token -> its inputs: the SDK function whose code sends that token
  (`pulumi.runtime.invoke_output('<token>', __args__)`), its `__args__['<wireName>'] = <param>`
  lines (the wire names it sends) and the annotation of each parameter;
- nested objects: each `@input_type` class's declared (wire) names and types, through
  `pulumi._types.input_type_types`, the table the SDK's own serializer uses to translate them.

`check` walks a value as it went over the wire against those declarations and reports every key
no declaration names, every key of a declared map (user data) and every value declared `Any`.
"""

from __future__ import annotations

import ast
import collections.abc
import importlib
import inspect
import itertools
import json
import pkgutil
import textwrap
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
from pulumi import _types
from pulumi.runtime import rpc

Kind = Literal["undeclared", "user-map", "opaque"]


@dataclass(frozen=True)
class Finding:
    """One place in a value that no declared property name accounts for."""

    kind: Kind  # undeclared: a key the type does not declare; user-map/opaque: keys not checked
    path: str  # dotted wire path, e.g. "machineSecrets.secrets.bootstrap_token", "data"
    declared_by: str  # the SDK class or function whose declaration applies


@dataclass(frozen=True)
class Declaration:
    """What an SDK declares for one resource or invoke: wire name -> annotation."""

    owner: str
    properties: Mapping[str, Any]


def resource_declaration(token: str) -> Declaration:
    """The inputs of the resource (or provider) class the SDK registers for `token`."""
    args_class = _resource_args_class(_resource_class(token))
    return input_type_declaration(args_class)


def input_type_declaration(args_class: type) -> Declaration:
    """The declared wire names and types of an `@input_type` class."""
    assert _types.is_input_type(args_class), f"{args_class} is not an @input_type class"
    return Declaration(_name(args_class), _types.input_type_types(args_class))


def invoke_declaration(token: str) -> Declaration:
    """The arguments the SDK function for `token` sends, by wire name, with their annotations."""
    function = _invoke_function(token)
    hints = typing.get_type_hints(function)
    wire_to_param = _args_assignments(function)
    return Declaration(
        f"{function.__module__}.{function.__name__}",
        {wire: hints[param] for wire, param in wire_to_param.items()},
    )


def check(value: Mapping[str, Any], declaration: Declaration) -> list[Finding]:
    """Every key in `value` (wire form, secrets unwrapped) that the declaration does not name."""
    return list(_check_object(value, [(declaration.owner, declaration.properties)], ""))


# --- walking values ---------------------------------------------------------------------------


def _check_object(
    value: Mapping[str, Any], candidates: list[tuple[str, Mapping[str, Any]]], path: str
) -> Iterator[Finding]:
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        declared = [(owner, props[key]) for owner, props in candidates if key in props]
        if not declared:
            yield Finding("undeclared", where, " | ".join(owner for owner, _ in candidates))
            continue
        owner, annotation = declared[0]
        yield from _check_value(item, annotation, where, owner)


def _check_value(value: Any, annotation: Any, path: str, owner: str) -> Iterator[Finding]:
    shapes = _shapes(annotation)
    if isinstance(value, str) and (shapes.objects or shapes.lists or shapes.maps):
        # Provider configuration travels JSON-encoded (the generated Provider applies
        # `pulumi.runtime.to_json` to every non-string input); its provider decodes it.
        try:
            value = json.loads(value)
        except ValueError:
            return
    if shapes.opaque:
        yield Finding("opaque", path, owner)
    elif isinstance(value, Mapping):
        if shapes.objects:
            objects = [input_type_declaration(cls) for cls in shapes.objects]
            yield from _check_object(value, [(d.owner, d.properties) for d in objects], path)
        elif shapes.maps:
            yield Finding("user-map", path, owner)
            for key, item in value.items():
                for element in shapes.maps:
                    yield from _check_value(item, element, f"{path}[{key!r}]", owner)
        else:
            yield Finding("undeclared", f"{path}{{}}", owner)  # an object where none is declared
    elif isinstance(value, list):
        for index, item in enumerate(value):
            for element in shapes.lists:
                yield from _check_value(item, element, f"{path}[{index}]", owner)


@dataclass
class _Shapes:
    objects: list[type]
    lists: list[Any]
    maps: list[Any]
    opaque: bool


def _shapes(annotation: Any) -> _Shapes:
    """The forms an annotation allows, with Input/Output/Optional/Awaitable peeled off.

    The `...ArgsDict` TypedDicts beside each Args class are left out: they are the same type
    spelled with Python (snake_case) keys, which is exactly what must not reach the wire.
    """
    shapes = _Shapes([], [], [], False)
    for member in _members(annotation):
        origin = typing.get_origin(member)
        arguments = typing.get_args(member)
        if member is Any:
            shapes.opaque = True
        elif isinstance(member, type) and _types.is_input_type(member):
            shapes.objects.append(member)
        elif typing.is_typeddict(member):
            continue
        elif origin in (collections.abc.Sequence, list):
            shapes.lists.extend(arguments)
        elif origin in (collections.abc.Mapping, dict):
            shapes.maps.append(arguments[1] if len(arguments) == 2 else Any)
    return shapes


def _members(annotation: Any) -> Iterator[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or isinstance(annotation, types.UnionType):
        for argument in typing.get_args(annotation):
            yield from _members(argument)
    elif origin in (pulumi.Output, collections.abc.Awaitable):
        # The SDK resolves Input's type variable to NoneType in Output[T]; T sits beside it.
        yield from _members(typing.get_args(annotation)[0])
    elif annotation is not type(None):
        yield annotation


# --- finding the SDK's classes and functions --------------------------------------------------


def _resource_class(token: str) -> type:
    package, module, name = token.split(":")
    if (package, module) == ("pulumi", "providers"):
        registered = rpc.get_resource_package(name, "")
        info = getattr(registered, "pkg_info", None)
        class_name = info["class"] if info else None
    else:
        registered = rpc.get_resource_module(package, module, "")
        info = getattr(registered, "mod_info", None)
        class_name = info.get("classes", {}).get(token) if info else None
    if info is None or class_name is None:
        raise LookupError(f"no imported SDK registers the resource type {token}")
    return getattr(importlib.import_module(info["fqn"]), class_name)


def _resource_args_class(resource_class: type) -> type:
    for overload in typing.get_overloads(resource_class.__init__):
        parameter = inspect.signature(overload, eval_str=True).parameters.get("args")
        if parameter is None:
            continue
        for member in _members(parameter.annotation):
            if isinstance(member, type) and _types.is_input_type(member):
                return member
    raise LookupError(f"{_name(resource_class)} declares no `args: ...Args` overload")


def _invoke_function(token: str) -> Callable[..., Any]:
    package, module, _ = token.split(":")
    registered = rpc.get_resource_package(package, "")
    info = getattr(registered, "pkg_info", None)
    if info is None:
        raise LookupError(f"no imported SDK registers the package of {token}")
    root = importlib.import_module(info["fqn"])
    # The token's module ("imageFactory/getUrls") names a Python subpackage by a codegen rule of
    # its own ("imagefactory"): try the likely one first, then every other.
    likely = module.split("/")[0].lower()
    subpackages = sorted(
        (name for _, name, is_package in pkgutil.iter_modules(root.__path__) if is_package),
        key=lambda name: name != likely,
    )
    namespaces = itertools.chain(
        [root], (importlib.import_module(f"{root.__name__}.{name}") for name in subpackages)
    )
    for namespace in namespaces:
        # The SDK imports its subpackages lazily (pulumi._utils._LazyModule): reading any
        # attribute outside the introspection ones, such as __all__, loads the module.
        getattr(namespace, "__all__", None)
        for candidate in vars(namespace).values():
            if inspect.isfunction(candidate) and token in candidate.__code__.co_consts:
                return candidate
    raise LookupError(f"no function in {root.__name__} invokes {token}")


def _args_assignments(function: Callable[..., Any]) -> dict[str, str]:
    """`__args__['wireName'] = param` in the generated function: wire name -> parameter."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Name)):
            continue
        for target in node.targets:
            if (
                isinstance(target, ast.Subscript)
                and isinstance(target.value, ast.Name)
                and target.value.id == "__args__"
                and isinstance(target.slice, ast.Constant)
                and isinstance(target.slice.value, str)
            ):
                found[target.slice.value] = node.value.id
    if not found:
        raise LookupError(f"{function.__qualname__} sends no `__args__` entries")
    return found


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
