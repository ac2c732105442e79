#!/usr/bin/env bash
# Runs every benchmark scenario beside its same-run baseline and writes
# bench/results.json and the table in BENCHMARKS.md. Extra arguments go to
# the harness (for example: scripts/bench.sh -run etcd).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prereqs.sh
# Docker Swarm is the peer berth is measured against; installed (never
# started as a system service) when missing.
scripts/install-docker.sh
go run ./bench/cmd/bench "$@"
