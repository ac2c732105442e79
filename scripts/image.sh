#!/usr/bin/env bash
# Builds a node image bundle into bin/node-image.tar.gz from bin/berth and
# the static runtime (scripts/build-runtime.sh, cached), and prints its
# digest. Extra arguments go to `berth image build` (for example --preload).
set -euo pipefail
cd "$(dirname "$0")/.."
BERTH_BUILD_PULUMI=0 scripts/build.sh >/dev/null
runtime_dir=$(scripts/build-runtime.sh | tail -n 1)
bin/berth image build --runtime-dir "$runtime_dir" --out bin/node-image.tar.gz "$@"
