"""Typed, path-aware access to one mapping of raw stack config, so every error names its key."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, TypeVar

from settings.errors import ConfigError

# The stack config namespace: every key is written `homelab:<key>` in Pulumi.<stack>.yaml.
NAMESPACE = "homelab"

T = TypeVar("T")
_REQUIRED: Any = object()
# Words YAML 1.1 (PyYAML, many editors) reads as booleans but YAML 1.2 — gopkg.in/yaml.v3, which
# the Pulumi CLI reads Pulumi.<stack>.yaml with — keeps as text: only true/True/TRUE and
# false/False/FALSE are booleans there (go-yaml/yaml v3.0.1 resolve.go, resolveMapList).
_YAML11_BOOLEANS = frozenset(
    word
    for base in ("y", "yes", "n", "no", "on", "off")
    for word in (base, base.capitalize(), base.upper())
)

# How the CLI passes on an unquoted date such as 2024-01-01: yaml.v3 resolves it to a time.Time
# (resolve.go, parseTimestamp) and pulumi/pulumi config/object.go unmarshalObject stores
# time.Time.String(), Go's "2006-01-02 15:04:05.999999999 -0700 MST" layout.
_GO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)? [+-]\d{4} \S+$")


class ConfigKind(Enum):
    """How the Pulumi CLI hands a top-level value to the program, so how to read it back.

    The CLI passes a string raw and any other value as JSON text (pulumi/pulumi
    sdk/go/common/resource/config/object.go MarshalString, plaintext.go marshalText); the
    language host puts that map in PULUMI_CONFIG (sdk/python/cmd/pulumi-language-python/main.go).
    """

    TEXT = "text"  # a string, passed raw: read with pulumi.Config.get
    STRUCTURED = "structured"  # a mapping or list, passed as JSON: pulumi.Config.get_object


class Section:
    """One mapping of raw config at a known key path, e.g. ``homelab:nodes[0]``.

    Keys are named as written in YAML: ``homelab:network`` for the namespace's own keys (the
    Pulumi config key), ``homelab:network.cidr`` below them.
    """

    def __init__(self, raw: object, path: str, known_keys: frozenset[str]) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(path, raw, "must be a mapping of keys to values", _fix_mapping(path))
        self._raw: Mapping[str, Any] = raw
        self.path = path
        # The namespace itself ("homelab") holds Pulumi config keys, joined with ':'.
        self._separator = "." if ":" in path else ":"
        unknown = sorted(set(raw) - known_keys)
        if unknown:
            raise ConfigError(
                self.key(unknown[0]),
                raw[unknown[0]],
                "is not a known setting",
                _fix_unknown(unknown[0], sorted(known_keys), self._display),
            )

    def key(self, name: str) -> str:
        return f"{self.path}{self._separator}{name}"

    def _display(self, name: str) -> str:
        """How a known key is offered in a fix: in full for the namespace's own keys."""
        return self.key(name) if self._separator == ":" else name

    def has(self, name: str) -> bool:
        return self._raw.get(name) not in (None, "")

    def raw(self, name: str, default: Any = _REQUIRED) -> Any:
        if not self.has(name):
            if default is _REQUIRED:
                raise ConfigError(
                    self.key(name),
                    None,
                    "is required",
                    f"set {self.key(name)} in Pulumi.homelab.yaml",
                )
            return default
        return self._raw[name]

    def text(self, name: str, default: Any = _REQUIRED) -> str:
        value = self.raw(name, default)
        if value is not default and (not isinstance(value, str) or _GO_TIME.match(value)):
            raise ConfigError(
                self.key(name),
                value,
                _retyped(value),
                f'write the value in quotes as you mean it, e.g. {name}: "0755", not {name}: 0755',
            )
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            problem = "must be true or false"
            if value in _YAML11_BOOLEANS:
                problem += " (Pulumi reads YAML 1.2, where only true and false are booleans)"
            raise ConfigError(self.key(name), value, problem, "write true or false")
        return value

    def integer(self, name: str, low: int, high: int | None, unit: str) -> int:
        value = self.raw(name)
        span = f"from {low} to {high}" if high is not None else f"at least {low}"
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(
                self.key(name), value, f"must be a whole number of {unit}", f"use {span}"
            )
        if value < low or (high is not None and value > high):
            raise ConfigError(self.key(name), value, f"is out of range ({unit})", f"use {span}")
        return value

    def items(self, name: str, default: Any = _REQUIRED) -> list[Any]:
        value = self.raw(name, default)
        if not isinstance(value, list):
            raise ConfigError(self.key(name), value, "must be a list", "write a YAML list")
        return value

    def parsed(self, name: str, parse: Callable[[str, Any], T], default: Any = _REQUIRED) -> T:
        """Run a parser that raises ConfigError with this key on bad input."""
        value = self.raw(name, default)
        return value if value is default else parse(self.key(name), value)


def _retyped(value: object) -> str:
    """Why a value that should be text is not: what the CLI's YAML 1.2 reader made of it."""
    if isinstance(value, bool):
        return "must be a string (unquoted, Pulumi's YAML reader took it as a boolean)"
    if isinstance(value, int | float):
        return (
            "must be a string (unquoted, Pulumi's YAML 1.2 reader took it as a number: "
            "0755 and 0o755 read as 493, 1_000 as 1000, 1.10 as 1.1)"
        )
    if isinstance(value, str):
        return "must be a string (unquoted, Pulumi's YAML reader took it as a date and rewrote it)"
    return "must be a string"


def _fix_unknown(name: str, known: list[str], display: Callable[[str], str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {display(close[0])}? Known: " if close else "use one of "
    return f"{hint}{', '.join(display(key) for key in known)}"


def _fix_mapping(path: str) -> str:
    return (
        f"write {path} as a YAML mapping (key: value lines) as in the committed Pulumi.homelab.yaml"
    )
