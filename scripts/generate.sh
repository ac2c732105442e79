#!/usr/bin/env bash
# Regenerates the committed generated files. Each generator is added with
# the feature that needs it (provider docs with tfplugindocs, the Pulumi
# schema and SDK with tfgen).
set -euo pipefail
cd "$(dirname "$0")/.."
go generate ./...
