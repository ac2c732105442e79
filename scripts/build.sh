#!/usr/bin/env bash
# Builds berth's binaries into bin/: every command of the root module that
# exists in this tree. The static node runtime (containerd, runc, CNI) is
# built by scripts/build-runtime.sh when a node image needs it.
set -euo pipefail
cd "$(dirname "$0")/.."
# BERTH_BUILD_PULUMI=0 skips the Pulumi bridge build (default 1).
case "${BERTH_BUILD_PULUMI:-1}" in
0 | 1) ;;
*) echo "build: BERTH_BUILD_PULUMI must be 0 or 1, not '${BERTH_BUILD_PULUMI}'" >&2; exit 2 ;;
esac
mkdir -p bin
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
ldflags="-s -w -X github.com/berth-io/berth/internal/version.Version=${version}"
pkgs=()
for p in ./cmd/berth ./acceptance/cmd/testbed ./provider/cmd/terraform-provider-berth; do
	[ -d "$p" ] && pkgs+=("$p")
done
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o bin/ "${pkgs[@]}"
echo "build: wrote $(cd bin && ls | tr '\n' ' ')into bin/"
if [ -d provider/bridge ] && [ "${BERTH_BUILD_PULUMI:-1}" = 1 ]; then
	scripts/pulumi.sh build
fi
