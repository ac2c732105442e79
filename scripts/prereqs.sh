#!/usr/bin/env bash
# Installs the Debian packages berth's tests, demo and benchmarks need, only
# when something is missing. Safe to run again; does nothing without root
# (the tests that need these then skip with a reason, or fail under CI).
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have containerd || need+=(containerd)
have runc || need+=(runc)
have ctr || need+=(containerd)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
have ssh || need+=(openssh-client)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
have nft || need+=(nftables)
have ip || need+=(iproute2)
have tc || need+=(iproute2)
have nsenter || need+=(util-linux)
have unshare || need+=(util-linux)
have tar || need+=(tar)
have gcc || need+=(gcc)
[ -f /usr/lib/x86_64-linux-gnu/libseccomp.a ] || [ -f /usr/lib/aarch64-linux-gnu/libseccomp.a ] || need+=(libseccomp-dev)
have pkill || need+=(procps)

if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ] || ! have apt-get; then
	echo "prereqs: missing ${need[*]}; run as root on Debian to install them (tests needing them will skip)" >&2
	exit 0
fi
# De-duplicate.
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
echo "prereqs: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts services it installs; berth's tests run their own private
# containerd and sshd instances, so the system ones are not needed.
