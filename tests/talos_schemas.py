"""Validators for Talos config documents, one per supported Talos minor (see talos_schema/)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_DIR = Path(__file__).parent / "talos_schema"
TALOS_MINORS = ("v1.12", "v1.13")


@cache
def validators(minor: str) -> tuple[Draft202012Validator, ...]:
    """The project's schema for the minor, plus the official one when a user has dropped it in."""
    paths = [SCHEMA_DIR / f"{minor}.json", SCHEMA_DIR / "official" / f"{minor}.json"]
    return tuple(
        Draft202012Validator(json.loads(path.read_text())) for path in paths if path.is_file()
    )


def schema_errors(minor: str, document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for validator in validators(minor)
        for error in validator.iter_errors(document)
    ]
