#!/usr/bin/env bash
# `make demo`: natagent working, in network namespaces, in well under a minute.
#
# What it shows today: a home host behind a port-restricted NAT (Linux
# masquerade) and a public host on a simulated internet. The public host also
# runs natagent's STUN service. The home agent learns its public address and
# NAT behaviour, dials the public host, and a ping and a TCP transfer cross
# the tunnel. (The rendezvous relay and hole punching between two NATed homes
# come with later work; they will join this demo.)
#
#   make demo          run it, then remove everything (also on Ctrl-C)
#   make demo KEEP=1   leave it running and print how to look around
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
. scripts/lab.sh
KEEP=${KEEP:-}
natctl=$top/natctl natagent=$top/natagent

if [[ $(id -u) != 0 ]]; then
	echo "demo: needs root for network namespaces: sudo make demo" >&2
	exit 1
fi
if [[ -z $KEEP ]]; then lab_traps; else trap 'echo; echo "demo: interrupted; lab kept (KEEP=1)"' INT; fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
started=$(date +%s.%N)

say "Building the lab: an internet, a public host, a home behind a NAT"
lab_internet && lab_server pub 198.18.0.70 198.18.0.71 && lab_site home port || exit 1
echo "  public host  198.18.0.70            (namespace $(lab_ns pub))"
echo "  home router  $(lab_wan_ip home) (masquerade)  (namespace $(lab_ns home-gw))"
echo "  home host    $(lab_host_ip home)             (namespace $(lab_ns home))"

say "Keys and configs (in $LAB_DIR, readable by you)"
umask 077
mkdir -p "$LAB_DIR/home" "$LAB_DIR/pub"
for n in home pub; do
	"$natctl" genkey > "$LAB_DIR/$n.key"
	"$natctl" pubkey < "$LAB_DIR/$n.key" > "$LAB_DIR/$n.pub"
done
cat > "$LAB_DIR/pub/nt0.conf" <<CONF
[Interface]
PrivateKey = $(cat "$LAB_DIR/pub.key")
ListenPort = 40000
Address = 10.77.0.1/24

[Peer]
PublicKey = $(cat "$LAB_DIR/home.pub")
AllowedIPs = 10.77.0.2/32

[Rendezvous]
Listen = 198.18.0.70:3478
AlternateListen = 198.18.0.71:3479
CONF
cat > "$LAB_DIR/home/nt0.conf" <<CONF
[Interface]
PrivateKey = $(cat "$LAB_DIR/home.key")
ListenPort = 40000
Address = 10.77.0.2/24
STUN = 198.18.0.70:3478

[Peer]
PublicKey = $(cat "$LAB_DIR/pub.pub")
AllowedIPs = 10.77.0.1/32
Endpoint = 198.18.0.70:40000
CONF
sed 's/^PrivateKey = .*/PrivateKey = (hidden)/; s/^/  /' "$LAB_DIR/home/nt0.conf"

say "Starting the agents"
lab_spawn pub "$LAB_DIR/pub.log" "$natagent" -c "$LAB_DIR/pub/nt0.conf"
lab_spawn home "$LAB_DIR/home.log" "$natagent" -c "$LAB_DIR/home/nt0.conf"
wait_for 10 grep -q "session up" "$LAB_DIR/home.log"
wait_for 10 grep -qE "public address|discovery .* failed" "$LAB_DIR/home.log"
sed 's/^natagent: info: /  home: /' "$LAB_DIR/home.log" | grep -E "listening|public address|session up|TUN|XDP|fast path" 
sed 's/^natagent: info: /  pub:  /' "$LAB_DIR/pub.log" | grep -E "STUN service|session up|TUN|XDP|fast path"

say "Ping through the tunnel (home 10.77.0.2 -> pub 10.77.0.1)"
lab_exec home ping -c3 -i0.2 10.77.0.1 | sed 's/^/  /'

say "A TCP transfer through the tunnel (iperf3, 2 s)"
lab_spawn pub "$LAB_DIR/iperf3.log" iperf3 -s -B 10.77.0.1 -1
wait_for 5 sh -c "ip netns exec $(lab_ns pub) ss -ltn | grep -q ':5201'"
lab_exec home iperf3 -c 10.77.0.1 -t 2 -f m | grep -E "sender|receiver" | sed 's/^/  /'

say "Stopping the agents: sessions closed, TUN devices, routes and XDP removed"
if [[ -z $KEEP ]]; then
	kill -TERM "${LAB_PIDS[@]}" 2>/dev/null
	wait_for 5 grep -q "dropped:" "$LAB_DIR/home.log"
	grep -hE "dropped:" "$LAB_DIR/home.log" | sed 's/^natagent: info: /  home: /'
fi

awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "\ndemo: done in %.1f s\n", e - s }'
if [[ -n $KEEP ]]; then
	cat <<TXT

The lab is still running (KEEP=1). Look around:
  sudo ip netns exec $(lab_ns home) bash     # the home host: ping 10.77.0.1, ip addr show nt0
  sudo ip netns exec $(lab_ns pub) bash      # the public host
  logs and configs: $LAB_DIR
Remove it all:
  sudo kill $(printf '%s ' "${LAB_PIDS[@]:-}")
  for ns in \$(ip netns list | awk '{print \$1}' | grep -- '-$LAB_ID\$'); do sudo ip netns del \$ns; done
  sudo rm -rf $LAB_DIR
TXT
fi
