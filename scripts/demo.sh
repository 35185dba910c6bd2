#!/usr/bin/env bash
# The demo of README's quick start. The tunnel, rendezvous and punching it will
# show are not built yet; until they are, it says what it will do and shows
# what works today, so that nobody mistakes it for the real thing.
set -euo pipefail
cd "$(dirname "$0")/.."
cat <<'TXT'
natagent demo (preview)

When the data plane lands, this builds a lab in network namespaces: a rendezvous
server on a simulated internet, two home sites behind different NATs (one of them
behind a carrier-grade NAT tier), generates keys and configs, starts both agents,
and shows their discovery, the hole punch, a ping and a TCP transfer through the
tunnel, and `natctl show` on both sides; then it removes everything.

What works today, shown for real:
TXT
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077
./natctl genkey > "$work/home.key"
pub=$(./natctl pubkey < "$work/home.key")
echo "  natctl genkey | natctl pubkey  ->  $pub"
cat > "$work/home.conf" <<CONF
[Interface]
PrivateKey = $(cat "$work/home.key")
Address = 10.77.0.1/24
[Peer]
PublicKey = $pub
AllowedIPs = 10.77.0.2/32
CONF
echo "  natagent -n -c home.conf (a peer with our own key):"
natagent=$(pwd)/natagent
(cd "$work" && "$natagent" -n -c home.conf 2>&1 | sed "s/^/    /") || true
