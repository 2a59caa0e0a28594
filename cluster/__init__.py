"""Talos side: secrets, machine config, bootstrap, health and client configs."""

from cluster.component import TalosCluster, TalosClusterArgs

__all__ = ["TalosCluster", "TalosClusterArgs"]
