#!/usr/bin/env bash
# Build the static container runtime (containerd, shim, ctr, runc, CNI plugins)
# that node images carry, at the versions pinned in tools/runtime/go.mod.
#
# Outputs are cached under .cache/runtime/<recipe hash>/ and reused; the last
# line on stdout is that directory (bin/, cni/bin/, versions.json).
# .cache/runtime/latest points at the most recent build.
#
# Usage: scripts/build-runtime.sh [-cache DIR]
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$repo/.cache/runtime"
if [[ "${1:-}" == "-cache" ]]; then
	cache="$(mkdir -p "$2" && cd "$2" && pwd)"
	shift 2
fi
if [[ $# -ne 0 ]]; then
	echo "usage: $0 [-cache DIR]" >&2
	exit 2
fi

# runc links libseccomp statically; Debian ships libseccomp.a in libseccomp-dev.
have_libseccomp() {
	local a
	a="$(${CC:-gcc} -print-file-name=libseccomp.a 2>/dev/null)" && [[ "$a" == /* && -f "$a" ]]
}
if ! have_libseccomp; then
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
		echo "build-runtime: installing libseccomp-dev (needed to link runc statically)" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libseccomp-dev >&2
	fi
	if ! have_libseccomp; then
		echo "build-runtime: libseccomp.a not found; install libseccomp-dev (Debian) or your system's static libseccomp" >&2
		exit 1
	fi
fi

cd "$repo/tools/runtime"
dir="$(go run . -cache "$cache" -module "$repo/tools/runtime")"
ln -sfn "$(basename "$dir")" "$cache/latest"
echo "build-runtime: runtime in $dir (also $cache/latest)" >&2
echo "$dir"
