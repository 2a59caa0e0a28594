"""GitOps half: Flux, its Git source and the layered Kustomizations."""

from gitops.component import GitOps, GitOpsArgs

__all__ = ["GitOps", "GitOpsArgs"]
