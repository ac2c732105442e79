#!/usr/bin/env bash
# Regenerates the committed generated files: the provider docs in docs/
# (tfplugindocs) and, when the Pulumi bridge is present, the Pulumi schema
# and the Go SDK in sdk/ (tfgen). Commit what it changes; `make test` fails
# while the committed copies are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/generate-docs.sh
if [ -x scripts/generate-sdk.sh ] && [ -d provider/bridge ]; then
	scripts/generate-sdk.sh
fi
