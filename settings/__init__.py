"""Stack config + SOPS secrets → one validated Settings object; the secrets as Pulumi secrets."""

from settings.errors import ConfigError
from settings.model import (
    DERIVED_SETTING_KEYS,
    Node,
    Role,
    SecretValues,
    Settings,
)
from settings.parse import NAMESPACE, TOP_LEVEL_KEYS, parse_settings
from settings.reader import ConfigKind
from settings.secrets import decrypt_secrets_file, secret_values

__all__ = [
    "DERIVED_SETTING_KEYS",
    "NAMESPACE",
    "TOP_LEVEL_KEYS",
    "ConfigError",
    "ConfigKind",
    "Node",
    "Role",
    "SecretValues",
    "Settings",
    "decrypt_secrets_file",
    "parse_settings",
    "secret_values",
]
