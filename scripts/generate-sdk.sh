#!/usr/bin/env bash
# Regenerates the Pulumi schema, the bridge metadata and the Go SDK from the
# bridge mapping (provider/bridge) and the Terraform provider it wraps:
#   provider/bridge/cmd/pulumi-resource-berth/{schema.json,bridge-metadata.json}
#   sdk/go/berth/, sdk/go/.gitattributes      (package berth, DO NOT EDIT)
#
# Usage: scripts/generate-sdk.sh          regenerate the committed copies
#        scripts/generate-sdk.sh --check  fail when the committed copies are
#                                         stale (make test runs this)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
check=0
case "${1:-}" in
--check) check=1 ;;
"") ;;
*)
	echo "usage: $0 [--check]" >&2
	exit 2
	;;
esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bridge="$repo/provider/bridge"
plugin_dir="$bridge/cmd/pulumi-resource-berth"

tfgen() {
	(cd "$bridge" && go build -o "$work/pulumi-tfgen-berth" ./cmd/pulumi-tfgen-berth)
	"$work/pulumi-tfgen-berth" "$@" >"$work/tfgen.log" 2>&1 || {
		cat "$work/tfgen.log" >&2
		echo "generate-sdk: pulumi-tfgen-berth $* failed" >&2
		exit 1
	}
}

# The generator embeds bridge-metadata.json, and the schema run rewrites it:
# generate into a scratch copy, and run again with the new metadata embedded
# until it stops changing (once, unless a rename was added).
mkdir -p "$work/schema" "$work/sdk/go"
cp "$plugin_dir/bridge-metadata.json" "$work/metadata.orig"
restore_metadata() { cp "$work/metadata.orig" "$plugin_dir/bridge-metadata.json"; }
for attempt in 1 2 3; do
	tfgen schema --out "$work/schema"
	if cmp -s "$work/schema/bridge-metadata.json" "$plugin_dir/bridge-metadata.json"; then
		break
	fi
	if [[ $attempt == 3 ]]; then
		restore_metadata
		echo "generate-sdk: bridge-metadata.json does not settle" >&2
		exit 1
	fi
	# Embed the new metadata for the next run (restored below under --check).
	cp "$work/schema/bridge-metadata.json" "$plugin_dir/bridge-metadata.json"
done
tfgen go --out "$work/sdk/go"
if ((check)); then
	restore_metadata
fi

stale=0
compare() { # compare GENERATED COMMITTED
	if ! diff -r -u "$2" "$1" >"$work/diff" 2>&1; then
		stale=1
		echo "generate-sdk: ${2#"$repo"/} is stale:" >&2
		head -n 40 "$work/diff" >&2
	fi
}

if ((check)); then
	compare "$work/schema/schema.json" "$plugin_dir/schema.json"
	compare "$work/schema/bridge-metadata.json" "$plugin_dir/bridge-metadata.json"
	compare "$work/sdk/go/berth" "$repo/sdk/go/berth"
	compare "$work/sdk/go/.gitattributes" "$repo/sdk/go/.gitattributes"
	if ((stale)); then
		echo "generate-sdk: run scripts/generate-sdk.sh and commit the result" >&2
		exit 1
	fi
	echo "generate-sdk: schema, bridge metadata and sdk/go/berth are up to date"
	exit 0
fi

cp "$work/schema/schema.json" "$work/schema/bridge-metadata.json" "$plugin_dir/"
rm -rf "$repo/sdk/go/berth"
mkdir -p "$repo/sdk/go"
cp -r "$work/sdk/go/berth" "$repo/sdk/go/berth"
cp "$work/sdk/go/.gitattributes" "$repo/sdk/go/.gitattributes"
(cd "$repo/sdk" && go mod tidy && go build ./... && go vet ./...)
echo "generate-sdk: wrote ${plugin_dir#"$repo"/}/{schema.json,bridge-metadata.json} and sdk/go/berth"
