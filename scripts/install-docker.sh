#!/usr/bin/env bash
# Installs Debian's docker.io (dockerd, the peer berth's benchmarks measure
# against) when dockerd is missing, WITHOUT starting it: dockerd started in
# the root namespace rewrites the machine's firewall (FORWARD policy DROP,
# NAT and DOCKER chains, docker0, bridge netfilter), which breaks testbed
# traffic. The benchmarks start their own dockerd inside a network namespace
# of its own. Safe to run again; does nothing without root or apt-get (the
# Swarm figures then skip with the reason).
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
if have dockerd; then
	exit 0
fi
if [ "$(id -u)" != 0 ] || ! have apt-get; then
	echo "install-docker: dockerd missing; run as root on Debian to install docker.io (Swarm figures will skip)" >&2
	exit 0
fi

# A policy-rc.d that exits 101 tells invoke-rc.d not to start any service
# during the install. Keep one that is already there; remove only ours.
policy=/usr/sbin/policy-rc.d
ours=""
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# written by berth scripts/install-docker.sh for the duration of an install\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
	ours=1
fi
cleanup() {
	if [ -n "$ours" ]; then
		rm -f "$policy"
	fi
}
trap cleanup EXIT

echo "install-docker: installing docker.io (services are not started)"
export DEBIAN_FRONTEND=noninteractive RUNLEVEL=1
apt-get update -qq
apt-get install -y -qq --no-install-recommends docker.io >/dev/null

# Belt and braces: under systemd, disable the units so a reboot does not
# start them either; without systemd there is nothing to disable.
if have systemctl && [ -d /run/systemd/system ]; then
	systemctl disable --now docker.service docker.socket containerd.service >/dev/null 2>&1 || true
fi
if pid=$(pidof dockerd 2>/dev/null); then
	echo "install-docker: a dockerd (pid $pid) is running in the root namespace; stop it and undo its firewall changes" >&2
	exit 1
fi
echo "install-docker: dockerd $(dockerd --version 2>/dev/null | head -1)"
