"""Typed, path-aware access to one mapping of raw stack config, so every error names its key."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from settings.errors import ConfigError

T = TypeVar("T")
_REQUIRED: Any = object()


class Section:
    """One mapping of raw config at a known key path, e.g. ``homelab:nodes[0]``."""

    def __init__(self, raw: object, path: str, known_keys: frozenset[str]) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(path, raw, "must be a mapping of keys to values", _fix_mapping(path))
        unknown = sorted(set(raw) - known_keys)
        if unknown:
            raise ConfigError(
                f"{path}.{unknown[0]}",
                raw[unknown[0]],
                "is not a known setting",
                f"use one of {', '.join(sorted(known_keys))} (check the spelling)",
            )
        self._raw: Mapping[str, Any] = raw
        self.path = path

    def key(self, name: str) -> str:
        return f"{self.path}.{name}"

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
        if value is not default and not isinstance(value, str):
            raise ConfigError(self.key(name), value, "must be a string", "quote the value")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), value, "must be true or false", "write true or false")
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


def _fix_mapping(path: str) -> str:
    return (
        f"write {path} as a YAML mapping (key: value lines) as in the committed Pulumi.homelab.yaml"
    )
