#!/usr/bin/env bash
# Relayed connectivity through the rendezvous (issue 6). The lab: a
# rendezvous on the internet (QUIC + STUN on 198.18.0.10:3478, RFC 5780 from
# 198.18.0.11:3479); hosts a and b behind symmetric NATs (random port per
# destination: no direct path without prediction), c behind a CGNAT tier
# (double NAT), eve behind a port-restricted NAT. No peer has an Endpoint.
#  - every host registers and learns its public address from the rendezvous;
#  - a <-> b (symmetric/symmetric) and c <-> b (double NAT): ping and TCP
#    through the tunnel, over the relay, judged by the rendezvous's own
#    packet counters;
#  - eve lists a, but a does not list eve: nothing gets through, and eve's
#    log never shows a's address; the rendezvous counts the refusals;
#  - the rendezvous is killed and restarted during a TCP transfer: the
#    transfer completes;
#  - a bounded burst of garbage and of unauthenticated handshakes does not
#    stop the rendezvous serving a and b.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/scripts/lab.sh"
. "$here/lib.sh"

[[ $(id -u) == 0 ]] || tap_skip_all "needs root"
command -v iperf3 >/dev/null || tap_skip_all "iperf3 not installed"
lab_traps

RDV=198.18.0.10 RDV2=198.18.0.11
natctl=$top/natctl natagent=$top/natagent
declare -A ADDR=([a]=10.77.0.1 [b]=10.77.0.2 [c]=10.77.0.3 [eve]=10.77.0.9)
declare -A PEERS=([a]="b" [b]="a c" [c]="b" [eve]="a")

keys() {
	for n in rdv a b c eve; do
		"$natctl" genkey > "$LAB_DIR/$n.key"
		"$natctl" pubkey < "$LAB_DIR/$n.key" > "$LAB_DIR/$n.pub"
	done
}

rdv_conf() {
	mkdir -p "$LAB_DIR/rdv"
	cat > "$LAB_DIR/rdv/rdv0.conf" <<-CONF
	[Interface]
	PrivateKey = $(cat "$LAB_DIR/rdv.key")
	[Rendezvous]
	Listen = $RDV:3478
	AlternateListen = $RDV2:3479
	RelayRate = 0
	RelayRateTotal = 0
	CONF
}

host_conf() {  # NAME
	local f=$LAB_DIR/$1/nt0.conf p
	mkdir -p "$LAB_DIR/$1"
	cat > "$f" <<-CONF
	[Interface]
	PrivateKey = $(cat "$LAB_DIR/$1.key")
	ListenPort = 40000
	Address = ${ADDR[$1]}/24
	IdleTimeout = 15
	Rendezvous = $RDV:3478
	RendezvousKey = $(cat "$LAB_DIR/rdv.pub")
	CONF
	for p in ${PEERS[$1]}; do
		printf '[Peer]\nPublicKey = %s\nAllowedIPs = %s/32\n' \
			"$(cat "$LAB_DIR/$p.pub")" "${ADDR[$p]}" >> "$f"
	done
}

start() {  # NAME [CONF]
	local conf=${2:-$LAB_DIR/$1/nt0.conf}
	mkdir -p "$LAB_DIR/run-$1"
	lab_spawn "$1" "$LAB_DIR/$1.log" env NATAGENT_RUN_DIR="$LAB_DIR/run-$1" \
		"$natagent" -d -B -c "$conf"
	printf -v "PID_$1" '%s' "$LAB_LAST_PID"
	wait_for 5 grep -q ready "$LAB_DIR/$1.log"
}

stop() {  # NAME
	local pid=PID_$1
	kill -TERM "${!pid}" 2>/dev/null
	wait_for 5 sh -c "! kill -0 ${!pid} 2>/dev/null"
}

setup() {
	lab_internet && lab_server rdv "$RDV" "$RDV2" && lab_server junk 198.18.0.20 &&
		lab_site a symmetric && lab_site b symmetric && lab_site c cgnat &&
		lab_site eve port || return 1
	# Count what reaches the rendezvous's QUIC port: the judge of "relayed".
	lab_exec rdv nft -f - <<-NFT || return 1
	table inet judge {
		counter rdv_in {}
		chain in { type filter hook input priority 0; udp dport 3478 counter name rdv_in; }
	}
	NFT
	umask 077
	keys && rdv_conf || return 1
	for n in a b c eve; do host_conf "$n" || return 1; done
	: > "$LAB_DIR/rdv.log"
	start rdv "$LAB_DIR/rdv/rdv0.conf" || return 1
	for n in a b c eve; do : > "$LAB_DIR/$n.log"; start "$n" || return 1; done
}

if ! setup; then
	tap_fail "a rendezvous and four hosts behind NATs" "$(tail -n 5 "$LAB_DIR"/*.log)"
	tap_done
fi
tap_ok "a rendezvous and four hosts behind NATs"

for n in a b c eve; do
	tap_check "$n registers at the rendezvous" \
		wait_for 10 grep -q "registered at rendezvous $RDV:3478" "$LAB_DIR/$n.log"
done
tap_check "the rendezvous tells c (double NAT) the CGNAT's public address" \
	grep -q "sees us as $(lab_wan_ip c):" "$LAB_DIR/c.log"

tap_check "a -> b (symmetric NAT to symmetric NAT): ping through the relay" \
	wait_for 20 lab_exec a ping -c1 -W1 10.77.0.2
tap_check "c -> b (double NAT to symmetric NAT): ping through the relay" \
	wait_for 20 lab_exec c ping -c1 -W1 10.77.0.2
tap_check "a's log: its session to b runs over the relay" \
	sh -c "grep -F 'peer $(cut -c1-8 "$LAB_DIR/b.pub"): session up' $LAB_DIR/a.log | grep -q 'path: relay'"

rdv_bytes() {
	lab_exec rdv nft list counter inet judge rdv_in | sed -nE 's/.*bytes ([0-9]+).*/\1/p'
}

iperf() {  # FROM TO SECONDS -> sets RC RECEIVED
	lab_exec "$1" timeout $(($3 + 25)) iperf3 -c "$2" -t "$3" -J > "$LAB_DIR/iperf3.json" 2>&1
	RC=$?
	RECEIVED=$(sed -nE '/"sum_received"/,/}/ s/.*"bytes":[[:space:]]*([0-9]+).*/\1/p' \
		"$LAB_DIR/iperf3.json" | head -n1)
	tap_diag "iperf3 $1 -> $2: exit $RC, received ${RECEIVED:-?} bytes"
}

show() {  # HOST [ARGS...]: natctl show against HOST's agent
	local h=$1; shift
	NATAGENT_RUN_DIR=$LAB_DIR/run-$h "$natctl" show "$@"
}
show a nt0 > "$LAB_DIR/show-a.txt" 2>&1
tap_diag "$(cat "$LAB_DIR/show-a.txt")"
tap_check "natctl show on a: peer b, relay via the rendezvous" \
	grep -q "path: relay via $RDV:3478" "$LAB_DIR/show-a.txt"
tap_check "natctl show on a: registered at the rendezvous, seen as its NAT's address" \
	grep -qE "rendezvous: $RDV:3478, registered .*seen as $(lab_wan_ip a):" "$LAB_DIR/show-a.txt"
tap_check "natctl show on a: why relayed (both NATs, the pairs tried, a verdict)" \
	eval 'grep -q "^  nat: ours " "$LAB_DIR/show-a.txt" && grep -q "^  pair: " "$LAB_DIR/show-a.txt" &&
	      grep -q "^  verdict: " "$LAB_DIR/show-a.txt"'

# A new host address is a new candidate: the relayed agent punches again with
# it at once (rtnetlink), not at its next retry.
extra=$(lab_host_ip a | sed -E 's/\.[0-9]+$/.99/')
lab_exec a ip addr add "$extra/24" dev eth0
tap_check "a new address on a ($extra): a punches again, with it among the pairs" \
	wait_for 8 eval 'grep -q "host addresses changed" "$LAB_DIR/a.log" &&
		show a nt0 | grep -q "^  pair: $extra:40000 -> "'
lab_exec a ip addr del "$extra/24" dev eth0

show rdv rdv0 --json > "$LAB_DIR/show-rdv.json" 2>&1
tap_check "natctl show --json on the rendezvous: 4 registered peers" \
	python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["rendezvous_service"]["registered_peers"] != 4)' \
	"$LAB_DIR/show-rdv.json"

lab_spawn b "$LAB_DIR/iperf3-b.log" iperf3 -s -B 10.77.0.2
wait_for 5 sh -c "ip netns exec $(lab_ns b) ss -ltn | grep -q ':5201'"
for from in a c; do
	before=$(rdv_bytes)
	iperf $from 10.77.0.2 3
	through=$(( $(rdv_bytes) - before ))
	tap_check "TCP transfer $from -> b through the tunnel" test "$RC" = 0 -a "${RECEIVED:-0}" -gt 1000000
	tap_diag "the rendezvous received $through bytes on its port meanwhile"
	tap_check "... and every byte of it passed the rendezvous (relayed, not direct)" \
		test "$through" -ge "${RECEIVED:-1}"
done

# eve lists a; a does not list eve. The rendezvous must not connect them.
tap_check "eve (not listed by a) gets nothing through to a" \
	sh -c "! ip netns exec $(lab_ns eve) ping -c3 -W1 10.77.0.1"
tap_check "eve never had a session with a" sh -c "! grep -q 'session up' $LAB_DIR/eve.log"
tap_check "eve's log never shows a's public address" \
	sh -c "! grep -q '$(lab_wan_ip a)' $LAB_DIR/eve.log"
tap_check "a never heard of eve" sh -c "! grep -q '$(cut -c1-8 "$LAB_DIR/eve.pub")' $LAB_DIR/a.log"

# The rendezvous restarts in the middle of a 10 s transfer.
lab_exec a timeout 40 iperf3 -c 10.77.0.2 -t 10 -J > "$LAB_DIR/iperf3-restart.json" 2>&1 &
iperf_pid=$!
sleep 3
# SIGKILL: no goodbye to the peers; they learn of the restart from the new
# instance's stateless resets (the reset secret comes from the key).
kill -KILL "$PID_rdv"
wait_for 5 sh -c "! kill -0 $PID_rdv 2>/dev/null"
: > "$LAB_DIR/rdv2.log"
lab_spawn rdv "$LAB_DIR/rdv2.log" "$natagent" -d -B -c "$LAB_DIR/rdv/rdv0.conf"
PID_rdv=$LAB_LAST_PID
wait "$iperf_pid"; RC=$?
RECEIVED=$(sed -nE '/"sum_received"/,/}/ s/.*"bytes":[[:space:]]*([0-9]+).*/\1/p' \
	"$LAB_DIR/iperf3-restart.json" | head -n1)
tap_diag "iperf3 across the restart: exit $RC, received ${RECEIVED:-?} bytes"
tap_check "a TCP transfer survives the rendezvous restarting under it" \
	test "$RC" = 0 -a "${RECEIVED:-0}" -gt 1000000
for n in a b; do
	tap_check "$n registered again by itself" \
		wait_for 10 sh -c "test \$(grep -c 'registered at rendezvous' $LAB_DIR/$n.log) -ge 2"
done
tap_diag "$(grep -h 'rendezvous .*session ended' "$LAB_DIR/a.log" | tail -n 1)"
tap_check "the tunnel works after the restart" lab_exec a ping -c1 -W2 10.77.0.2

# A bounded burst against the rendezvous from another internet host: junk
# datagrams, handshake floods, and handshakes without a key, while a pings b
# through the relay. Afterwards a and b still talk and register again.
rdvload=${RDVLOAD:-$top/build/bench/rdvload}
if [[ -x $rdvload ]]; then
	rkey=$(cat "$LAB_DIR/rdv.pub")
	lab_exec a ping -c 20 -i 0.2 -W1 10.77.0.2 > "$LAB_DIR/ping-burst.txt" 2>&1 &
	ping_pid=$!
	for mode in garbage initials nokey; do
		n=20000; [[ $mode == nokey ]] && n=300
		lab_exec junk timeout 60 "$rdvload" --server $RDV:3478 --server-key "$rkey" \
			--mode $mode --peers $n --concurrency 50 --rate 20000 --duration 30 \
			> "$LAB_DIR/load-$mode.out" 2> "$LAB_DIR/load-$mode.err"
		tap_diag "rdvload $mode: exit $? $(cat "$LAB_DIR/load-$mode.out")"
		if [[ $mode == initials ]]; then
			# The flood's half-open handshakes live on for the handshake
			# timeout; a real peer must still get in meanwhile.
			stop b
			start b
			tap_check "right after a handshake flood, b registers again within 5 s" \
				wait_for 5 grep -q "registered at rendezvous" "$LAB_DIR/b.log"
		fi
	done
	wait "$ping_pid"
	got=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' "$LAB_DIR/ping-burst.txt")
	tap_diag "ping a -> b during the burst: ${got:-0} of 20 answered"
	tap_check "the relay kept serving a and b during the burst (>= 10 of 20 pings; b restarts in it)" \
		test "${got:-0}" -ge 10
	tap_check "no key-less handshake was accepted" \
		grep -q "mode=nokey.* accepted=0 " "$LAB_DIR/load-nokey.out"
	tap_check "the rendezvous is still up" kill -0 "$PID_rdv"
	tap_check "after the burst: ping a -> b (over b's new session)" \
		wait_for 20 lab_exec a ping -c1 -W1 10.77.0.2
else
	tap_skip "burst against the rendezvous" "build/bench/rdvload not built"
fi
stop rdv
tap_diag "$(grep 'rendezvous:' "$LAB_DIR/rdv2.log")"
tap_check "the rendezvous counted its refusals of eve (not allowed)" \
	grep -qE "rendezvous: .*[1-9][0-9]* not allowed" "$LAB_DIR/rdv2.log"

# The relay rate limit: 2 Mbit/s per peer. A TCP transfer through it must
# stay near that, and the rendezvous counts what it dropped over the rate.
sed -i 's/^RelayRate = 0$/RelayRate = 2/' "$LAB_DIR/rdv/rdv0.conf"
: > "$LAB_DIR/rdv3.log"
lab_spawn rdv "$LAB_DIR/rdv3.log" "$natagent" -d -B -c "$LAB_DIR/rdv/rdv0.conf"
PID_rdv=$LAB_LAST_PID
tap_check "the tunnel comes back through a rate-limited rendezvous" \
	wait_for 30 lab_exec a ping -c1 -W1 10.77.0.2
iperf a 10.77.0.2 3
kbit=$(( ${RECEIVED:-0} * 8 / 3 / 1000 ))
tap_diag "through a 2 Mbit/s relay limit: ${kbit} kbit/s"
tap_check "RelayRate = 2: the transfer completes, at most ~2 Mbit/s (under 4000 kbit/s)" \
	test "$RC" = 0 -a "${RECEIVED:-0}" -gt 50000 -a "$kbit" -lt 4000
stop rdv
tap_diag "$(grep 'rendezvous:' "$LAB_DIR/rdv3.log")"
tap_check "the rendezvous counted the datagrams over the rate" \
	grep -qE "rendezvous: .* [1-9][0-9]* over rate" "$LAB_DIR/rdv3.log"
tap_done
