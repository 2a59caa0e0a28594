"""Every `homelab:` key as the Pulumi CLI passed it: the one place that reads pulumi.Config."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi.runtime.config as runtime_config

from settings.errors import ConfigError
from settings.parse import TOP_LEVEL_KEYS
from settings.reader import NAMESPACE, ConfigKind


def read_stack_config() -> dict[str, Any]:
    """Every `homelab:` key the CLI passed, each read with the getter its kind needs.

    The CLI passes a string raw and other values as JSON (settings/reader.py ConfigKind), so a
    string such as secretsFile is read with get and mappings and lists with get_object. Unknown
    keys are read as text for parse_settings to reject by name. The whole map: the language
    host's shim hands PULUMI_CONFIG to set_all_config (pulumi/pulumi
    sdk/python/cmd/pulumi-language-python-exec), which the SDK keeps in
    pulumi.runtime.config.CONFIG; get_config falls back to PULUMI_CONFIG itself (get_config_env).
    The SDK has no public way to list keys (pulumi 3.272.0, pulumi/runtime/config.py).
    """
    config = pulumi.Config(NAMESPACE)
    prefix = f"{NAMESPACE}:"
    passed = {*runtime_config.CONFIG.get(), *runtime_config.get_config_env()}
    values: dict[str, Any] = {}
    for name in sorted(key.removeprefix(prefix) for key in passed if key.startswith(prefix)):
        if TOP_LEVEL_KEYS.get(name) is not ConfigKind.STRUCTURED:
            values[name] = config.get(name)
            continue
        try:
            values[name] = config.get_object(name)
        except pulumi.config.ConfigTypeError:
            raise ConfigError(
                f"{prefix}{name}",
                config.get(name),
                "must be a YAML mapping or list",
                f"write {prefix}{name} as in the committed Pulumi.homelab.yaml",
            ) from None
    return values
