#!/usr/bin/env bash
# commit-msg hook: the subject line must be a Conventional Commit, e.g. "feat(infra): add a worker".
# Git's own merge, revert and fixup!/squash! subjects pass untouched.  Usage: check-commit-msg.sh <msg-file>
set -euo pipefail

subject="$(grep -v '^#' "${1:?usage: $0 <commit-msg-file>}" | head -n 1)"
pattern='^(feat|fix|docs|style|refactor|perf|test|build|ci|chore|revert)(\([a-z0-9._/-]+\))?!?: .+'

if [[ "$subject" =~ $pattern || "$subject" =~ ^(Merge |Revert \"|fixup! |squash! |amend! ) ]]; then
  exit 0
fi

cat >&2 <<EOF
Commit subject is not a Conventional Commit:
  $subject
Write it as  type(optional-scope)!: summary
  type:  feat fix docs style refactor perf test build ci chore revert
  scope: lowercase letters, digits and . _ / -   (e.g. infra, gitops, kubernetes/apps)
  !      marks a breaking change
EOF
exit 1
