#!/usr/bin/env bash
# Builds what Pulumi needs from this repository into bin/:
#   bin/pulumi                 the Pulumi CLI, at the version pinned in
#                              tools/pulumi/go.mod (cached: rebuilt only when
#                              that module or the Go toolchain changes)
#   bin/pulumi-resource-berth  berth's Pulumi provider plugin (provider/bridge)
# and, with `test`, runs the tests of the Pulumi modules (provider/bridge,
# sdk, examples/pulumi-go, tools/pulumi) with bin/ first on PATH, after
# checking that the committed schema and SDK are current.
#
# Usage: scripts/pulumi.sh [build|test] [go test flags...]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cmd="${1:-build}"
[[ $# -gt 0 ]] && shift
bin="$repo/bin"
mkdir -p "$bin"

build_cli() {
	local mod="$repo/tools/pulumi" version stamp want
	version="$(awk '$1 == "github.com/pulumi/pulumi/pkg/v3" { print $2 }' "$mod/go.mod")"
	if [[ -z "$version" ]]; then
		echo "pulumi: no github.com/pulumi/pulumi/pkg/v3 requirement in tools/pulumi/go.mod" >&2
		exit 1
	fi
	want="$(cat "$mod/go.mod" "$mod/go.sum" <(go version) | sha256sum | cut -d' ' -f1)"
	stamp="$bin/.pulumi.stamp"
	if [[ -x "$bin/pulumi" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
		echo "pulumi: bin/pulumi $version is current"
		return
	fi
	echo "pulumi: building the Pulumi CLI $version (takes a few minutes)"
	(cd "$mod" && go build -trimpath \
		-ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
		-o "$bin/pulumi.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
	mv "$bin/pulumi.tmp" "$bin/pulumi"
	echo "$want" >"$stamp"
	echo "pulumi: wrote bin/pulumi $("$bin/pulumi" version)"
}

build_plugin() {
	local version
	version="$(git -C "$repo" describe --tags --match 'v*' 2>/dev/null || true)"
	local ldflags=""
	if [[ -n "$version" ]]; then
		ldflags="-X github.com/berth-io/berth/provider/bridge.Version=${version#v}"
	fi
	(cd "$repo/provider/bridge" && go build -trimpath -ldflags "$ldflags" -o "$bin/pulumi-resource-berth" ./cmd/pulumi-resource-berth)
	echo "pulumi: wrote bin/pulumi-resource-berth"
}

case "$cmd" in
build)
	build_cli
	build_plugin
	;;
test)
	build_cli
	build_plugin
	"$repo/scripts/generate-sdk.sh" --check
	export PATH="$bin:$PATH"
	for mod in provider/bridge sdk examples/pulumi-go tools/pulumi acceptance/migration/pulumi; do
		[[ -f "$repo/$mod/go.mod" ]] || continue
		echo "==> go test ./... in $mod"
		(cd "$repo/$mod" && go vet ./... && go test -count=1 -timeout 20m "$@" ./...)
	done
	;;
*)
	echo "usage: $0 [build|test] [go test flags...]" >&2
	exit 2
	;;
esac
