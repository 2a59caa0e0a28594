#!/usr/bin/env bash
# CI only (.github/workflows/preview.yml): choose the Pulumi backend and stack to preview.
#
# With the repository secrets PULUMI_BACKEND_URL and PULUMI_CONFIG_PASSPHRASE (passed in as
# CONFIGURED_BACKEND_URL, CONFIGURED_PASSPHRASE): the real stack "homelab" in that backend.
# Without them: a throw-away stack on an empty local file backend, configured from a copy of
# Pulumi.homelab.yaml, with a random passphrase. Nothing exists in it yet, so the preview plans
# every resource as a create and talks to neither Proxmox nor the nodes.
#
# Writes PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE_FILE and SOPS_AGE_KEY_FILE to $GITHUB_ENV
# (overriding what mise-action exported) and stack=<name> to $GITHUB_OUTPUT.
set -euo pipefail
: "${GITHUB_ENV:?}" "${GITHUB_OUTPUT:?}" "${RUNNER_TEMP:?}" "${SOPS_AGE_KEY:?}"

umask 077
passphrase_file="$RUNNER_TEMP/pulumi-passphrase"
age_key_file="$RUNNER_TEMP/age-key.txt"

# The program also reads the age key from a file (it hands it to Flux): give it one.
printf '%s\n' "$SOPS_AGE_KEY" >"$age_key_file"

if [[ -n "${CONFIGURED_BACKEND_URL:-}" ]]; then
  if [[ -z "${CONFIGURED_PASSPHRASE:-}" ]]; then
    echo "::error::Secret PULUMI_BACKEND_URL is set but PULUMI_CONFIG_PASSPHRASE is not."
    exit 1
  fi
  backend="$CONFIGURED_BACKEND_URL"
  stack=homelab
  printf '%s' "$CONFIGURED_PASSPHRASE" >"$passphrase_file"
else
  if grep -Eq '(^|[[:space:]])secure:' Pulumi.homelab.yaml; then
    echo "::error::Pulumi.homelab.yaml holds secure: values a fresh stack cannot decrypt; set the PULUMI_BACKEND_URL and PULUMI_CONFIG_PASSPHRASE secrets instead."
    exit 1
  fi
  backend="file://$RUNNER_TEMP/pulumi-state"
  stack=ci-preview
  mkdir -p "$RUNNER_TEMP/pulumi-state"
  passphrase="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
  echo "::add-mask::$passphrase"
  printf '%s' "$passphrase" >"$passphrase_file"
  # Same config, minus the salt of the real stack's passphrase (the new stack writes its own).
  grep -v '^encryptionsalt:' Pulumi.homelab.yaml >"Pulumi.$stack.yaml"
  echo "::notice title=Throw-away stack::No PULUMI_BACKEND_URL secret: previewing a fresh stack (every resource a create)."
fi

{
  echo "PULUMI_BACKEND_URL=$backend"
  echo "PULUMI_CONFIG_PASSPHRASE_FILE=$passphrase_file"
  echo "SOPS_AGE_KEY_FILE=$age_key_file"
} >>"$GITHUB_ENV"
echo "stack=$stack" >>"$GITHUB_OUTPUT"
