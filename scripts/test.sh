#!/usr/bin/env bash
# Runs every test tier and prints how long each took:
#   static       gofmt, go vet
#   unit         go test -short (fast, no root)
#   integration  every non-acceptance package without -short (real etcd,
#                containerd, sshd, namespaces where a test needs them)
#   acceptance   the testbed packages, one package at a time
#   runtime      the static runtime build module (tools/runtime)
#   pulumi       the Pulumi bridge, SDK, example and move test (own modules)
# Under CI (BERTH_REQUIRE_PREREQS=1) a test that skips for a missing
# prerequisite fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/prereqs.sh

declare -a summary=()
tier() {
	local name=$1
	shift
	local start=$SECONDS
	echo "==> tier $name: $*"
	if "$@"; then
		summary+=("$(printf '%-12s ok    %4ds' "$name" $((SECONDS - start)))")
	else
		summary+=("$(printf '%-12s FAIL  %4ds' "$name" $((SECONDS - start)))")
		printf '%s\n' "${summary[@]}"
		exit 1
	fi
}

acceptance_pkgs=$(go list ./acceptance/... 2>/dev/null | tr '\n' ' ')
other_pkgs=$(go list ./... | grep -v '/acceptance' | tr '\n' ' ')

tier static scripts/lint.sh
tier generated scripts/check-generated.sh
tier unit go test -short -count=1 -timeout 10m ./...
tier integration go test -count=1 -timeout 25m $other_pkgs
if [ -n "$acceptance_pkgs" ]; then
	tier acceptance go test -count=1 -p 1 -timeout 40m $acceptance_pkgs
fi
# The modules beside the product: the static runtime build, and Pulumi (the
# bridge, the generated SDK, the example program and the Pulumi move test,
# with the Pulumi CLI built from the Go module proxy).
tier runtime bash -c 'cd tools/runtime && go vet ./... && go test -count=1 -timeout 20m ./...'
tier pulumi scripts/pulumi.sh test -p 1

echo "==> test tiers"
printf '%s\n' "${summary[@]}"
