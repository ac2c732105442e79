#!/usr/bin/env bash
# Fails when regenerating the provider documentation would change docs/:
# renders into a temporary directory inside the repository (tfplugindocs
# writes relative to it) and compares the files tfplugindocs manages.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rel=".generated-docs-check.$$"
trap 'rm -rf "$root/$rel"' EXIT

"$root/scripts/generate-docs.sh" "$rel" >/dev/null
status=0
for d in index.md resources data-sources; do
  if [ -e "$root/$rel/$d" ] || [ -e "$root/docs/$d" ]; then
    diff -ru "$root/docs/$d" "$root/$rel/$d" || status=1
  fi
done
if [ "$status" -ne 0 ]; then
  echo "check-generated: docs/ is stale; run scripts/generate-docs.sh and commit the result" >&2
  exit 1
fi
echo "check-generated: docs/ is up to date"
