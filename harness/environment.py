"""What a program run needs besides the engine: the committed stack config, the HA layout, a
stub `sops`, a secrets file and an age key. Shared by the test fixtures and bench/."""

from __future__ import annotations

import copy
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.cliconfig import load_stack_file
from harness.engine import PROJECT, PROJECT_ROOT

PROXMOX_TOKEN = "pulumi@pve!homelab=0b9c2a6e-3f5d-4c1e-9a77-5d2f8e1c4b60"
CLUSTER_SECRETS = {
    "DIGITALOCEAN_TOKEN": "dop_v1_test_token_value",
    "GRAFANA_ADMIN_PASSWORD": "test-grafana-password",
    "PUSHOVER_API_TOKEN": "test-pushover-api-token",
    "PUSHOVER_USER_KEY": "test-pushover-user-key",
}
STUB_SOPS = """#!{python}
# Test stand-in for sops: "decrypts" a plain YAML file; a file saying FAIL fails like sops does.
import json, sys, yaml
path = sys.argv[-1]
text = open(path).read()
if "FAIL" in text:
    sys.stderr.write("Failed to get the data key required to decrypt the SOPS file.\\n")
    sys.exit(128)
print(json.dumps(yaml.safe_load(text)))
"""


def committed_config() -> dict[str, Any]:
    """The `homelab:` config of Pulumi.homelab.yaml as the CLI reads it, keys without namespace."""
    config = load_stack_file((PROJECT_ROOT / "Pulumi.homelab.yaml").read_text(), PROJECT)
    prefix = f"{PROJECT}:"
    return {
        key.removeprefix(prefix): value for key, value in config.items() if key.startswith(prefix)
    }


def ha_config() -> dict[str, Any]:
    """3 control planes behind a VIP + 2 workers, spread over two Proxmox nodes."""
    config = copy.deepcopy(committed_config())
    config["network"]["vip"] = "192.168.20.99"
    base = config["nodes"][0]
    config["nodes"] = [
        {**base, "name": f"talos-cp-{i}", "ip": f"192.168.20.10{i}", "mac": f"BC:24:11:CA:FE:0{i}"}
        for i in (1, 2, 3)
    ] + [
        {
            **base,
            "name": f"talos-worker-{i}",
            "role": "worker",
            "ip": f"192.168.20.11{i}",
            "mac": f"BC:24:11:CA:FE:1{i}",
            "proxmoxNode": "pve2",
            "memory": 8192,
        }
        for i in (1, 2)
    ]
    return config


def secrets_document() -> dict[str, Any]:
    return {"proxmox": {"apiToken": PROXMOX_TOKEN}, "clusterSecrets": dict(CLUSTER_SECRETS)}


@dataclass(frozen=True)
class ProgramEnvironment:
    """What a program run needs besides its config: a stub `sops`, a secrets file, an age key."""

    sops: Path
    secrets_file: Path
    age_key: Path

    def path(self) -> str:
        """PATH with the stub sops found first."""
        return f"{self.sops.parent}{os.pathsep}{os.environ['PATH']}"


def write_program_environment(directory: Path) -> ProgramEnvironment:
    """Write the stand-ins into directory. Plain function: the fixtures and bench/ both use it."""
    bin_dir = directory / "bin"
    bin_dir.mkdir(exist_ok=True)
    sops = bin_dir / "sops"
    sops.write_text(STUB_SOPS.format(python=sys.executable))
    sops.chmod(sops.stat().st_mode | stat.S_IEXEC)
    secrets = directory / "secrets.enc.yaml"
    secrets.write_text(yaml.safe_dump(secrets_document()))
    age_key = directory / "age-key.txt"
    age_key.write_text("# public key: age1testtesttest\nAGE-SECRET-KEY-1TESTONLYNOTAREALKEY\n")
    return ProgramEnvironment(sops=sops, secrets_file=secrets, age_key=age_key)
