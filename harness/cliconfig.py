"""Stack config as the Pulumi CLI hands it to a Python program: the one encoder of the harness.

Every program run in tests and bench/ gets its config from here, so the program reads values in
the form `pulumi up` gives them, not in a form the harness invents. What the CLI does, in order
(pulumi/pulumi, paths below sdk/go/common unless noted):

1. workspace/loaders.go LoadProjectStackBytes reads Pulumi.<stack>.yaml with gopkg.in/yaml.v3
   (encoding/marshal.go; v3.0.1 in sdk/go.mod and pkg/go.mod) into plain values, prefixes keys
   without a namespace with the project name (stackConfigNamespacedWithProject), re-encodes and
   decodes the result into config.Map (resource/config/value.go, Value.UnmarshalYAML).
2. yaml.v3 types each unquoted scalar by YAML 1.2 core rules with its own extensions
   (go-yaml/yaml v3.0.1 resolve.go): see `_plain_scalar`. resource/config/object.go
   unmarshalObject stores a timestamp as Go's time.Time.String() text.
3. pkg/resource/deploy/source_eval.go (evalSource.Iterate) decrypts the map into
   map[key]string (resource/config/map.go Decrypt): a string raw, anything else — bool, number,
   null, mapping, list — as Go encoding/json text (object.go MarshalString, plaintext.go
   marshalText), plus the list of keys holding `secure:` values.
4. The Python language host puts both in PULUMI_CONFIG and PULUMI_CONFIG_SECRET_KEYS
   (sdk/python/cmd/pulumi-language-python/main.go, constructConfig/constructConfigSecretKeys),
   and its shim hands them to the SDK (sdk/python/cmd/pulumi-language-python-exec:
   set_all_config(get_config_env(), get_config_secret_keys_env())). `shim_config` does exactly that.
"""

from __future__ import annotations

import calendar
import json
import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pulumi
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from harness.process_env import patched_environ

CONFIG_VAR = "PULUMI_CONFIG"
SECRET_KEYS_VAR = "PULUMI_CONFIG_SECRET_KEYS"
_PLAIN = "!cliconfig/plain"  # marks an unquoted, untagged scalar, the only kind yaml.v3 resolves
_STR = BaseResolver.DEFAULT_SCALAR_TAG
_INT64 = range(-(2**63), 2**63)
_UINT64 = range(2**64)


class StackFileError(ValueError):
    """A stack file the Pulumi CLI refuses, or a value the harness cannot reproduce faithfully."""


# --- 1-2: reading Pulumi.<stack>.yaml the way yaml.v3 does ---------------------------------------


class _Resolver(BaseResolver):
    """Resolve nothing the YAML 1.1 way: plain scalars are marked and typed by `_plain_scalar`."""

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode and implicit[0]:
            return _PLAIN
        return super().resolve(kind, value, implicit)


class _Loader(Reader, Scanner, Parser, Composer, _Resolver):
    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _Resolver.__init__(self)


def load_stack_file(text: str, project: str) -> dict[str, Any]:
    """The `config:` of a stack file as config.Map holds it: full keys, values typed by yaml.v3."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    finally:
        loader.dispose()
    document = _value(root) if root is not None else None
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        return {}
    return {_full_key(key, project): value for key, value in config.items()}


def _full_key(key: str, project: str) -> str:
    """config.ParseKey (resource/config/key.go) after the project prefix is added."""
    parts = key.split(":") if ":" in key else [project, key]
    if len(parts) == 3 and parts[1] == "config":  # the legacy <namespace>:config:<name> form
        parts = [parts[0], parts[2]]
    if len(parts) != 2:
        raise StackFileError(f"could not parse {key} as a configuration key")
    return ":".join(parts)


def _value(node: Node) -> Any:
    if isinstance(node, ScalarNode):
        if node.tag == _PLAIN:
            return _plain_scalar(node.value)
        if node.tag == _STR:  # quoted, block, or !!str: text as written (decode.go scalar)
            return node.value
    elif isinstance(node, SequenceNode) and node.tag == BaseResolver.DEFAULT_SEQUENCE_TAG:
        return [_value(item) for item in node.value]
    elif isinstance(node, MappingNode) and node.tag == BaseResolver.DEFAULT_MAPPING_TAG:
        return _mapping(node)
    raise StackFileError(f"line {node.start_mark.line + 1}: tag {node.tag} is not supported here")


def _mapping(node: MappingNode) -> dict[str, Any]:
    result: dict[str, Any] = {}
    seen: dict[tuple[type, str], int] = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        # decode.go mapping(): keys are compared by node kind and text, before typing.
        identity = (type(key_node), str(key_node.value))
        if identity in seen:
            raise StackFileError(
                f"line {line}: mapping key {key_node.value!r} already defined at line "
                f"{seen[identity]}"
            )
        seen[identity] = line
        if isinstance(key_node, ScalarNode) and key_node.tag == _PLAIN and key_node.value == "<<":
            raise StackFileError(f"line {line}: YAML merge keys are not supported here")
        result[_key_text(_value(key_node))] = _value(value_node)
    return result


def _key_text(key: Any) -> str:
    """object.go unmarshalObject turns a non-string key into text with Go's %v."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, str | int):
        return str(key)
    if key is None:
        return "<nil>"
    raise StackFileError(f"mapping key {key!r} is not supported here")


_NAMED = {  # resolve.go resolveMapList: the only words with a meaning; yes/no/on/off stay text
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_GO_INT = re.compile(r"[+-]?(0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|0[0-7]*|[1-9][0-9]*)")
_GO_UINT = re.compile(r"0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|0[0-7]*|[1-9][0-9]*")
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")  # what Go's ParseFloat takes after a '.'
_YAML_STYLE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_TIMESTAMP = re.compile(  # the four layouts of resolve.go allowedTimestampFormats
    r"(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})"
    r"(?:(?P<sep>[Tt ])(?P<hour>\d{1,2}):(?P<minute>\d{1,2}):(?P<second>\d{1,2})"
    r"(?:[.,](?P<fraction>\d+))?(?P<zone>Z|[+-]\d\d:\d\d)?)?"
)


def _plain_scalar(text: str) -> Any:
    """resolve.go resolve("", text) for an unquoted scalar (v3.0.1), by its first character."""
    if text in _NAMED:
        return _NAMED[text]
    first = text[:1]
    if first == ".":
        return _go_float(text) if _DOT_FLOAT.fullmatch(text) else text
    if first in "+-0123456789":
        return _number_or_timestamp(text)
    # Letters included: resolveTable sends y/n/t/f/o/~ to the _NAMED lookup only, so yes, on
    # and off stay text.
    return text


def _number_or_timestamp(text: str) -> Any:
    if (timestamp := _timestamp(text)) is not None:
        return _go_time_text(timestamp)
    plain = text.replace("_", "")
    # strconv.ParseInt(plain, 0, 64), then ParseUint: base prefixes 0x, 0b, 0o and a bare
    # leading 0 (octal: 0755 is 493). resolve.go's later 0b/0o branches add nothing to these.
    if _GO_INT.fullmatch(plain) and (number := int(plain, 8 if _octal(plain) else 0)) in _INT64:
        return number
    if _GO_UINT.fullmatch(plain) and (number := int(plain, 8 if _octal(plain) else 0)) in _UINT64:
        return number
    return _go_float(plain) if _YAML_STYLE_FLOAT.fullmatch(plain) else text


def _octal(digits: str) -> bool:
    """Go reads a bare leading 0 as octal; Python's int(…, 0) refuses it."""
    unsigned = digits.lstrip("+-")
    return len(unsigned) > 1 and unsigned[0] == "0" and unsigned[1].isdigit()


def _go_float(text: str) -> float | str:
    """strconv.ParseFloat: out of range is an error (the scalar stays text), not infinity."""
    value = float(text)
    return text if math.isinf(value) else value


def _timestamp(text: str) -> re.Match[str] | None:
    """time.Parse with one of the four layouts: fields of 1-2 digits, ranges checked."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    # "2006-1-2 15:4:5.999999999" takes no zone; both T layouts require one ("Z07:00").
    if match["sep"] is not None and bool(match["zone"]) != (match["sep"] in ("T", "t")):
        return None
    year, month, day = int(match["year"]), int(match["month"]), int(match["day"])
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    if match["sep"] and (
        int(match["hour"]) > 23 or int(match["minute"]) > 59 or int(match["second"]) > 59
    ):
        return None
    return match


def _go_time_text(match: re.Match[str]) -> str:
    """object.go keeps a time.Time as its String(): "2006-01-02 15:04:05 +0000 UTC"."""
    if match["zone"] not in (None, "Z"):
        # time.Parse puts a numeric offset in the machine's local zone when they agree, so the
        # text the CLI passes on depends on where it runs.
        raise StackFileError(f"{match[0]}: a timestamp with an offset is not reproducible")
    names = ("year", "month", "day", "hour", "minute", "second")
    year, month, day, hour, minute, second = (int(match[name] or 0) for name in names)
    fraction = (match["fraction"] or "")[:9].rstrip("0")
    return (
        f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}"
        f"{'.' + fraction if fraction else ''} +0000 UTC"
    )


# --- 3: the map the CLI hands to the language host ---------------------------------------------


def wire_config(config: Mapping[str, Any], project: str) -> dict[str, str]:
    """config.Map → map[key]string: strings raw, every other value as Go's encoding/json text.

    `config` holds values as the CLI's YAML reader types them (`load_stack_file`, or a test's
    dict of the same kinds); keys without a namespace get the project's, as in a stack file.
    """
    return {_full_key(key, project): _wire_value(value) for key, value in config.items()}


def _wire_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"secure"}:
        raise StackFileError("`secure:` values need the stack's decrypter; keep secrets in sops")
    return _go_json(value)


def _go_json(value: Any) -> str:
    """encoding/json.Marshal: map keys sorted, no spaces, <>& and U+2028/9 escaped, Go's floats."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        for char in "<>&\u2028\u2029":
            text = text.replace(char, f"\\u{ord(char):04x}")
        return text
    if isinstance(value, int):
        if value not in _INT64 and value not in _UINT64:
            raise StackFileError(f"{value} does not fit the CLI's 64-bit integers")
        return str(value)
    if isinstance(value, float):
        return _go_float_text(value)
    if isinstance(value, Mapping):
        items = sorted((_key_text(key), item) for key, item in value.items())
        return "{" + ",".join(f"{_go_json(key)}:{_go_json(item)}" for key, item in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_go_json(item) for item in value) + "]"
    raise StackFileError(f"{value!r} ({type(value).__name__}) is not a value YAML can hold")


def _go_float_text(value: float) -> str:
    """encoding/json floatEncoder: shortest digits, 'f' form from 1e-6 to 1e21 (1000.0 is 1000,
    which Python reads back as an int), else 'e' form with "e-07" cleaned to "e-7"."""
    if not math.isfinite(value):
        raise StackFileError(f"json: unsupported value: {value}")  # json.Marshal refuses it
    number = Decimal(repr(value)).normalize()
    if value == 0 or 1e-6 <= abs(value) < 1e21:
        return format(number, "f")
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    mantissa = "".join(map(str, digits))
    mantissa = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
    power = exponent + len(digits) - 1
    exponent_text = f"-{-power}" if power < 0 else f"+{power:02d}"
    return f"{'-' if sign else ''}{mantissa}e{exponent_text}"


# --- 4: the language host's shim ---------------------------------------------------------------


@contextmanager
def shim_config(wire: Mapping[str, str]) -> Iterator[None]:
    """Set the config as pulumi-language-python-exec does: env vars, then set_all_config."""
    # constructConfigSecretKeys: no `secure:` values here, so no secret keys.
    with patched_environ({CONFIG_VAR: json.dumps(dict(wire)), SECRET_KEYS_VAR: "[]"}):
        pulumi.runtime.set_all_config(
            pulumi.runtime.get_config_env(), pulumi.runtime.get_config_secret_keys_env()
        )
        yield
