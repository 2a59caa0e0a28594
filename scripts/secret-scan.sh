#!/usr/bin/env bash
# The secret scan of .ci/run: detect-secrets over every file git tracks, against .secrets.baseline.
#
#   uv run scripts/secret-scan.sh                     scan (what .ci/run runs)
#   uv run scripts/secret-scan.sh --refresh-baseline  rewrite .secrets.baseline from the same files
#
# Needs detect-secrets and sops on PATH; `uv run` puts the dev dependencies' copies there.
# SOPS's own files are left out, as their content is high-entropy by design: .sops.yaml (age
# public keys) and every *.enc.* file that sops itself reports as encrypted (`sops filestatus`,
# since sops 3.9.0). A *.enc.* file that sops does not recognise — plain text under an encrypted
# name — is scanned like any other file.
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"

files=()
while IFS= read -r file; do
  case "${file##*/}" in
    .sops.yaml) continue ;;
    *.enc.*)
      if [[ "$(sops filestatus "$file" 2>/dev/null)" == '{"encrypted":true}' ]]; then
        continue
      fi
      ;;
  esac
  files+=("$file")
done < <(git ls-files)

if [[ "${1:-}" == --refresh-baseline ]]; then
  detect-secrets scan --exclude-files '^(uv\.lock|\.secrets\.baseline)$' "${files[@]}" >.secrets.baseline
else
  # exit 3 = only the baseline's line numbers moved, no new secret
  detect-secrets-hook --baseline .secrets.baseline "${files[@]}" || [ $? -eq 3 ]
fi
