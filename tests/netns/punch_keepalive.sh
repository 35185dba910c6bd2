#!/usr/bin/env bash
# Keepalives on a punched path (issue 7): two natagents behind port-restricted
# NATs whose UDP mappings die after 5 s of silence, with the BPF fast path on.
# Once the path is direct and the tunnel idle, each agent keeps its NAT open
# with token keepalives (STUN indications carrying the far side's path token,
# every PersistentKeepalive = 2 s), and the far side's XDP absorbs them: its
# counters show them dropped with reason "keepalive". After 12 s of tunnel
# silence the direct path still carries a ping at once, with no failover and
# no new punch, and the routers still hold the mappings. Each side's natctl
# show knows both NATs' behaviour (NATINFO, sent once discovery is done).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/scripts/lab.sh"
. "$here/lib.sh"

tap_needs python3

PIN=$(mktemp -d /tmp/natagent-ka.XXXXXX)
cleanup() {
	local rc=$? d
	lab_cleanup
	for d in "$PIN"/a "$PIN"/b; do mountpoint -q "$d" && umount "$d"; done
	rm -rf "$PIN"
	return $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

RDV=198.18.0.10 RDV2=198.18.0.11 PORT=40100
declare -A ADDR=([a]=10.77.0.1 [b]=10.77.0.2) OTHER=([a]=b [b]=a)

# Complete UDP checksums from the hosts: XDP rightly passes up a packet
# whose checksum a veth left for "hardware" to fill in.
lab_internet && lab_server rdv $RDV $RDV2 && lab_site a port && lab_site b port &&
	lab_full_checksums a eth0 && lab_full_checksums b eth0 || tap_bail "cannot build the lab"
# A bpffs per host, mounted here so that natctl (another `ip netns exec`)
# sees the agent's pins.
for h in a b; do
	mkdir -p "$PIN/$h" && mount -t bpf bpf "$PIN/$h" || tap_bail "cannot mount a bpffs on $PIN/$h"
done
for n in rdv a b; do
	"$natctl" genkey > "$LAB_DIR/$n.key" && "$natctl" pubkey < "$LAB_DIR/$n.key" > "$LAB_DIR/$n.pub"
done
mkdir -p "$LAB_DIR/rdv" "$LAB_DIR/a" "$LAB_DIR/b"
cat > "$LAB_DIR/rdv/rdv0.conf" <<CONF
[Interface]
PrivateKey = $(cat "$LAB_DIR/rdv.key")
[Rendezvous]
Listen = $RDV:3478
AlternateListen = $RDV2:3479
CONF
for h in a b; do
	o=${OTHER[$h]}
	cat > "$LAB_DIR/$h/nt0.conf" <<CONF
[Interface]
PrivateKey = $(cat "$LAB_DIR/$h.key")
ListenPort = $PORT
Address = ${ADDR[$h]}/24
IdleTimeout = 60
Rendezvous = $RDV:3478
RendezvousKey = $(cat "$LAB_DIR/rdv.pub")
[Peer]
PublicKey = $(cat "$LAB_DIR/$o.pub")
AllowedIPs = ${ADDR[$o]}/32
PersistentKeepalive = 2
CONF
done
chmod 600 "$LAB_DIR"/*/*.conf

lab_spawn rdv "$LAB_DIR/rdv.log" "$natagent" -B -d -c "$LAB_DIR/rdv/rdv0.conf"
wait_for 10 grep -q ': ready$' "$LAB_DIR/rdv.log" || tap_bail "the rendezvous did not start"
for h in a b; do
	lab_conntrack_timeout "$h-gw" 5 || tap_bail "cannot shorten $h-gw's timeouts"
	lab_spawn "$h" "$LAB_DIR/$h.log" env NATAGENT_RUN_DIR="$LAB_DIR/run-$h" \
		NATAGENT_BPF_PIN_ROOT="$PIN/$h" "$natagent" -d -c "$LAB_DIR/$h/nt0.conf"
done

show() { lab_exec "$1" env NATAGENT_RUN_DIR="$LAB_DIR/run-$1" "$natctl" show nt0 "${@:2}"; }
direct() { show "$1" | grep -q '^  endpoint: '; }
# json KEY HOST: a number from the peer's entry in natctl show --json (0 if absent)
json() {
	show "$2" --json | python3 -c 'import json, sys
p = json.load(sys.stdin)["peers"][0]
print(p.get(sys.argv[1], 0))' "$1"
}
# absorbed HOST: keepalives HOST's XDP dropped as valid ("keepalive" reason)
absorbed() {
	lab_exec "$1" env NATAGENT_BPF_PIN_ROOT="$PIN/$1" "$natctl" bpf --json | python3 -c '
import json, sys
print(sum(s["packets"] for i in json.load(sys.stdin)["interfaces"] for s in i["stats"]
          if s["reason"] == "keepalive" and s["action"] == "drop"))'
}

tap_check "both agents start with the BPF fast path" \
	wait_for 10 eval 'grep -q "XDP" "$LAB_DIR/a.log" && grep -q "XDP" "$LAB_DIR/b.log"'
tap_check "the path becomes direct on both sides" wait_for 20 eval 'direct a && direct b'
tap_check "a ping crosses the direct tunnel" \
	lab_exec a ping -c 3 -i 0.2 -W 2 "${ADDR[b]}"
k0=$(absorbed b)
fo0=$(json failovers a)
tap_diag "idle for 12 s; the routers forget a UDP mapping after 5 s of silence"
sleep 12
ka_a=$(json keepalives_sent a) ka_b=$(json keepalives_sent b)
k1=$(absorbed b)
tap_diag "keepalives sent: a $ka_a, b $ka_b; b's XDP absorbed $((k1 - k0)) while idle"
tap_diag "$(lab_exec b env NATAGENT_BPF_PIN_ROOT="$PIN/b" "$natctl" bpf 2>&1)"
tap_check "a sent token keepalives while the tunnel was idle (>= 4 in 12 s)" test "$ka_a" -ge 4
tap_check "b sent token keepalives too" test "$ka_b" -ge 4
tap_check "b's XDP absorbed a's keepalives (reason keepalive, action drop)" \
	test $((k1 - k0)) -ge 4
tap_check "after 12 s of tunnel silence a ping crosses at once" \
	lab_exec a ping -c 1 -W 1 "${ADDR[b]}"
tap_check "still direct on both sides, with no failover" \
	eval 'direct a && direct b && [[ $(json failovers a) == "$fo0" ]]'
tap_check "a's router still holds the mapping to b's router" \
	eval "lab_exec a-gw conntrack -L -p udp 2>/dev/null | grep -q 'dport=$PORT.*$(lab_wan_ip b)\|$(lab_wan_ip b).*dport=$PORT'"
# Both punched before their discovery was done; NATINFO on the session's
# control stream told each the other's NAT afterwards.
pr="endpoint-independent mapping, address-and-port-dependent filtering"
tap_check "natctl show on a knows both NATs (port-restricted), though the punch came first" \
	wait_for 10 eval 'show a | grep -qx "  nat: ours $pr; theirs $pr"'
show a > "$LAB_DIR/show-a.txt" 2>&1
tap_diag "$(cat "$LAB_DIR/show-a.txt")"
tap_done
