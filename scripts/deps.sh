#!/usr/bin/env bash
# Installs every build and test dependency from Debian's packages, only what is
# missing. apt-get update runs only when something must be installed, so this is
# quick (and offline-safe) when everything is already there.
set -euo pipefail

PKGS=(
  # build
  build-essential pkg-config clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev
  libngtcp2-dev libngtcp2-crypto-gnutls-dev libgnutls28-dev nettle-dev
  libmnl-dev libminiupnpc-dev libclang-rt-14-dev
  # lab and tests: the real peers natagent is checked against
  iproute2 nftables conntrack iputils-ping iperf3 coturn stun-client
  miniupnpd-nftables miniupnpc natpmpc wireguard-go wireguard-tools
  tcpdump systemd procps python3
)

missing=()
for p in "${PKGS[@]}"; do
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$st" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PKGS[@]} packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages: ${missing[*]}" >&2
  echo "deps: run as root (sudo make deps) to install them" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The services these packages bring (coturn, miniupnpd) are started by our
# tests in namespaces, never system-wide: keep the package scripts from
# starting them.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; made_policy=1
fi
trap '[ $made_policy = 1 ] && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}"
