"""`homelab:backup`: how often etcd is snapshotted and how long snapshots are kept. Pure.

The snapshot job itself lives in kubernetes/infrastructure-config/etcd-backup/; it reads these
values from the cluster-settings ConfigMap (Flux post-build substitution), so the schedule, the
retention and the alert threshold can never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from settings.errors import ConfigError
from settings.reader import Section

# The namespace of the snapshot CronJob: Talos hands out Talos API credentials only to the
# namespaces its machine config lists (kubernetesTalosAPIAccess.allowedKubernetesNamespaces).
BACKUP_NAMESPACE = "etcd-backup"
# The only Talos API role the job needs (pkg/machinery/role/role.go, siderolabs/talos).
ETCD_BACKUP_ROLE = "os:etcd:backup"
RECIPIENT_SETTING = "BACKUP_AGE_RECIPIENT"
# cluster-settings keys derived from homelab:backup (users may not set them in clusterSettings).
BACKUP_SETTING_KEYS = ("BACKUP_MAX_AGE_SECONDS", "BACKUP_RETENTION_DAYS", "BACKUP_SCHEDULE")

_KEYS = frozenset(
    {
        *("intervalHours", "retentionDays", "escrowFile", "deployKeyFile", "certificateFile"),
        *("adoptSecrets", "restoreFrom"),
    }
)
# age's X25519 recipient: Bech32 with the "age" prefix (age-encryption.org/v1, "X25519 recipient").
_AGE_RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")
# Encrypted snapshots (sops's binary format, stored as JSON): the CronJob's on the NAS, and those
# cluster/steps.py takes before a Talos upgrade.
SNAPSHOT_SUFFIXES = (".snapshot.sops.json", ".enc.db")
# Whole hours that divide a day, so `0 */N * * *` fires at even spacing around midnight too.
_INTERVALS = (1, 2, 3, 4, 6, 8, 12, 24)


@dataclass(frozen=True)
class BackupSettings:
    interval_hours: int
    retention_days: int
    # The Talos machine secrets, SOPS-encrypted in the repository (cluster/escrow.py).
    escrow_file: Path
    # The Flux deploy key (ssh:// repositories), escrowed and adopted the same way.
    deploy_key_file: Path
    # The wildcard certificate's Secret (`mise run cert:export`), put back on a rebuild.
    certificate_file: Path
    # Adopt the escrow file's secrets into a state that has none (lost state, second laptop).
    adopt_secrets: bool
    # An encrypted etcd snapshot to bootstrap from instead of an empty etcd (a restore).
    restore_from: Path | None

    @property
    def schedule(self) -> str:
        hours = "0" if self.interval_hours == 24 else f"*/{self.interval_hours}"
        return f"0 {hours} * * *"

    @property
    def max_age_seconds(self) -> int:
        """The alert threshold: one missed run is tolerated, two are not."""
        return 2 * self.interval_hours * 3600

    @property
    def flux_settings(self) -> dict[str, str]:
        return {
            "BACKUP_MAX_AGE_SECONDS": str(self.max_age_seconds),
            "BACKUP_RETENTION_DAYS": str(self.retention_days),
            "BACKUP_SCHEDULE": self.schedule,
        }


def parse_backup(
    raw: Any, raw_cluster_settings: Mapping[str, Any], namespace: str
) -> BackupSettings:
    section = Section(raw, f"{namespace}:backup", _KEYS)
    interval = section.raw("intervalHours", 6)
    if isinstance(interval, bool) or interval not in _INTERVALS:
        raise ConfigError(
            section.key("intervalHours"),
            interval,
            "is not a whole number of hours that divides a day",
            f"use one of {', '.join(map(str, _INTERVALS))} (default 6)",
        )
    retention = section.raw("retentionDays", 14)
    if isinstance(retention, bool) or not isinstance(retention, int) or not 1 <= retention <= 3650:
        raise ConfigError(
            section.key("retentionDays"),
            retention,
            "must be a whole number of days from 1 to 3650",
            "use e.g. 14 (the default)",
        )
    recipient = raw_cluster_settings.get(RECIPIENT_SETTING)
    if not isinstance(recipient, str) or not _AGE_RECIPIENT.match(recipient):
        private = isinstance(recipient, str) and "AGE-SECRET-KEY" in recipient.upper()
        raise ConfigError(
            f"{namespace}:clusterSettings.{RECIPIENT_SETTING}",
            "<redacted: a private key>" if private else recipient,
            "must be the age public key etcd snapshots are encrypted to",
            "set it to the output of `age-keygen -y .age-key.txt` (age1…, the public half only)",
        )
    return BackupSettings(
        interval_hours=interval,
        retention_days=retention,
        escrow_file=Path(section.text("escrowFile", "talos-secrets.enc.yaml")),
        deploy_key_file=Path(section.text("deployKeyFile", "flux-deploy-key.enc.yaml")),
        certificate_file=Path(section.text("certificateFile", "wildcard-tls.enc.yaml")),
        adopt_secrets=section.flag("adoptSecrets", False),
        restore_from=_snapshot(section),
    )


def _snapshot(section: Section) -> Path | None:
    value = section.text("restoreFrom", None)
    if value is None:
        return None
    path = Path(value)
    if not path.name.endswith(SNAPSHOT_SUFFIXES):
        raise _not_a_snapshot(
            section.key("restoreFrom"), value, "is not an encrypted etcd snapshot file"
        )
    return path


def check_snapshot(backup: BackupSettings, deployed: Mapping[str, Any] | None, key: str) -> None:
    """The snapshot must exist on the run that restores: a stack nothing was deployed by yet.

    Only that run reads it: the recovery step it creates never runs again (cluster/restore.py),
    and the setting stays in the committed stack config while the file, kept out of git
    (.gitignore), is absent from any other clone. `deployed` is the stack's own output of its last
    successful run (settings/upgrades.py), which the restoring run exports when it succeeds."""
    if backup.restore_from is None or deployed or backup.restore_from.is_file():
        return
    raise _not_a_snapshot(
        key, str(backup.restore_from), "does not exist, and the restoring run reads it"
    )


def _not_a_snapshot(key: str, value: str, problem: str) -> ConfigError:
    return ConfigError(
        key,
        value,
        problem,
        "copy one from the NAS (etcd-backups/etcd-<time>.snapshot.sops.json) or name one "
        "from backups/etcd/ (taken before a Talos upgrade)",
    )
