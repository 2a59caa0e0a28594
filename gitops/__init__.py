"""GitOps half: Flux, its Git source and the layered Kustomizations."""
