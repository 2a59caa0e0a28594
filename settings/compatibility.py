"""Which Kubernetes releases each Talos minor runs: the one table, copied from Talos's own source.

Source (github.com/siderolabs/talos): `pkg/machinery/compatibility/talos1NN/talos1NN.go`,
`MinimumKubernetesVersion` / `MaximumKubernetesVersion`, read at every tag of the minor
(talos112.go: v1.12.0 to v1.12.11; talos113.go: v1.13.0 to v1.13.9; identical at each). A node
checks a config with `KubernetesVersion.SupportedWith` (`pkg/machinery/compatibility/
kubernetes_version.go`): minimum <= version < maximum, patch level included; we do the same.

Deliberately no "default Kubernetes per Talos release" here: the Kubernetes version is always an
explicit setting, so a Talos bump never moves Kubernetes behind the user's back. (For reference,
`constants.DefaultKubernetesVersion` is 1.35.0 for v1.12.0-v1.12.4 and 1.36.0 for v1.13.0.)
"""

from __future__ import annotations

from dataclasses import dataclass

Version = tuple[int, int, int]


@dataclass(frozen=True)
class KubernetesRange:
    minimum: Version
    # Exclusive, as Talos compares it: 1.35.99 admits every real 1.35 patch release.
    maximum: Version

    def admits(self, version: Version) -> bool:
        return self.minimum <= version < self.maximum

    def describe(self) -> str:
        low, high = self.minimum, self.maximum
        return f"{low[0]}.{low[1]}.{low[2]} to {high[0]}.{high[1]}.x"


KUBERNETES_BY_TALOS_MINOR: dict[tuple[int, int], KubernetesRange] = {
    (1, 12): KubernetesRange(minimum=(1, 30, 0), maximum=(1, 35, 99)),
    (1, 13): KubernetesRange(minimum=(1, 31, 0), maximum=(1, 36, 99)),
}


def known_minors() -> str:
    return ", ".join(f"{major}.{minor}" for major, minor in sorted(KUBERNETES_BY_TALOS_MINOR))
