#!/usr/bin/env bash
# Hole punching under faults. The lab: the rendezvous (QUIC + STUN on
# 198.18.0.10:3478, RFC 5780 from 198.18.0.11:3479) and, for each part, a
# pair of sites; natagents in tun mode with no Endpoint (10.77.0.1 on the
# first host of a pair, 10.77.0.2 on the second).
#  (a) loss: port-restricted <-> port-restricted with 10 % random loss both
#      ways on both routers' WAN links: within 20 s both agents report a
#      direct path, and ping crosses the tunnel;
#  (b) NAT rebinding: a paced 6 MiB TCP transfer over a direct port <-> port
#      tunnel; 2 s into it the first site's router gives the agent's port a
#      new external port (lab_rebind). Every byte arrives intact within the
#      deadline; then the path is direct again (natctl on both sides, and the
#      rendezvous's byte counter during a second transfer), and the second
#      agent's `natctl show` endpoint is the first site's new external port;
#  (c) upgrade: symmetric <-> port starts relayed (natctl and the counters),
#      then the symmetric router becomes port-restricted (lab_set_nat +
#      lab_flush_conntrack) while a ping runs through the tunnel: within 30 s
#      both agents report a direct path and the rendezvous's counter stops
#      growing (under 4 KB in a second while 20 pings of 1000 bytes cross),
#      the ping losing at most MAX_LOST packets.
# The transfers are exact (xfer_start, scripts/agentlab.sh; iperf3 -n does
# not count the bytes in flight when its test ends, so it cannot tell that all
# of them arrived).
#
#   NATAGENT=/path/natagent NATCTL=/path/natctl tests/netns/punch_faults.sh
#   PARTS="a c" tests/netns/punch_faults.sh   (a subset)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/scripts/lab.sh"
. "$top/scripts/agentlab.sh"
. "$here/lib.sh"

tap_needs python3
lab_traps

RDV=198.18.0.10 RDV2=198.18.0.11
PARTS=${PARTS:-a b c}
MAX_LOST=${MAX_LOST:-5}   # (c): pings lost at 100 ms intervals, i.e. 0.5 s

setup() {
	lab_internet && lab_server rdv "$RDV" "$RDV2" || return 1
	lab_site la port && lab_site lb port &&       # (a)
		lab_site ra port && lab_site rb port &&   # (b)
		lab_site ua symmetric && lab_site ub port || return 1   # (c)
	rdv_judge || return 1
	rdv_start -d
}

both_direct() {  # DIR
	[[ $(path_of "$1" a) == direct && $(path_of "$1" b) == direct ]]
}
both_relay() {  # DIR
	[[ $(path_of "$1" a) == relay && $(path_of "$1" b) == relay ]]
}

# diag_show DIR: both agents' path and punch lines, as diagnostics.
diag_show() {
	local r
	for r in a b; do
		tap_diag "$(show "$1" "$r" | grep -E '^  (endpoint|path|punch|pair|nat|verdict|last path event):' | sed "s/^/$r:/")"
	done
}

# pair NAME HOST_A HOST_B PORT: keys, configs and both agents for one part
# (a first, registered, then b); the part's directory in D. Non-zero if an
# agent did not start.
pair() {
	D=$LAB_DIR/$1
	pair_conf "$D" "$4" || return 1
	PID_a='' PID_b=''
	start "$D" "$2" a && wait_for 10 grep -qs "registered at rendezvous" "$D/a.log" &&
		start "$D" "$3" b
}

# judged_xfer HOST_A HOST_B LOGBASE: a 1 MiB transfer at full speed; sets
# JUDGE to relay (the rendezvous's port received at least half the bytes),
# direct (under 5 %) or unclear, and XFER_RC.
judged_xfer() {
	local r0 r1 bytes=1048576
	r0=$(rdv_bytes)
	xfer_start "$1" "$2" 10.77.0.2 $bytes 0 15 "$3" && xfer_wait "$3"
	XFER_RC=$?
	r1=$(rdv_bytes)
	if (((r1 - r0) * 2 >= bytes)); then JUDGE=relay
	elif (((r1 - r0) * 20 < bytes)); then JUDGE=direct
	else JUDGE=unclear; fi
	tap_diag "$(tail -n1 "$3-send.log"); the rendezvous port received $((r1 - r0)) bytes meanwhile ($JUDGE)"
}

if ! setup; then
	tap_fail "the lab: rendezvous and three pairs of sites" "$(tail -n 5 "$LAB_DIR"/*.log 2>&1)"
	tap_done
fi
tap_ok "the lab: rendezvous and three pairs of sites"

# ------------------------------------------------------------------ (a) loss
part_a() {
	local t0
	lab_loss la-gw wan 10 && lab_loss lb-gw wan 10 || { tap_fail "(a) 10 % loss on both WANs"; return; }
	if ! pair loss la lb 42001; then
		tap_fail "(a) two agents behind lossy port-restricted NATs start" "$(tail -n 3 "$D"/?.log)"
		stop "$PID_a" "$PID_b"; return
	fi
	t0=$EPOCHREALTIME
	tap_check "(a) 10 % loss: ping through the tunnel" wait_for 20 lab_exec la ping -c1 -W1 10.77.0.2
	tap_check "(a) 10 % loss: both agents report a direct path within 20 s" wait_for 20 both_direct "$D"
	tap_diag "(a) after $(ms_since "$t0") ms"
	diag_show "$D"
	local out got
	out=$(lab_exec la ping -c 20 -i 0.1 -W 1 -q 10.77.0.2)
	got=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' <<<"$out")
	tap_diag "(a) 20 pings through the tunnel: ${got:-0} answered (the path loses ~19 % each way)"
	tap_check "(a) 10 % loss: ping keeps working (>= 10 of 20)" test "${got:-0}" -ge 10
	stop "$PID_a" "$PID_b"
	lab_loss la-gw wan 0; lab_loss lb-gw wan 0
}

# ------------------------------------------------------------- (b) rebinding
part_b() {
	local port=42002 newport=52002 host wan t0 rc ep
	host=$(lab_host_ip ra) wan=$(lab_wan_ip ra)
	if ! pair rebind ra rb $port; then
		tap_fail "(b) two agents behind port-restricted NATs start" "$(tail -n 3 "$D"/?.log)"
		stop "$PID_a" "$PID_b"; return
	fi
	tap_check "(b) ping through the tunnel" wait_for 15 lab_exec ra ping -c1 -W1 10.77.0.2
	tap_check "(b) both agents report a direct path" wait_for 8 both_direct "$D"
	diag_show "$D"
	tap_diag "(b) b sees a at $(show "$D" b | sed -nE 's/^  (endpoint|path): //p')"
	# 6 MiB over 6 s, any stall over 20 s fails it.
	if ! xfer_start ra rb 10.77.0.2 6291456 6 20 "$D/xfer"; then
		tap_fail "(b) TCP transfer starts" "$(cat "$D"/xfer-*.log)"; stop "$PID_a" "$PID_b"; return
	fi
	sleep 2
	t0=$EPOCHREALTIME
	tap_check "(b) lab_rebind: a's router maps $host:$port to $wan:$newport" \
		lab_rebind ra-gw "$host" $port $newport
	tap_check "(b) a's traffic leaves with the new port (the router's conntrack)" \
		wait_for 5 sh -c "ip netns exec $(lab_ns ra-gw) conntrack -L -p udp --orig-src $host \
			--orig-port-src $port 2>/dev/null | grep -q 'dport=$newport '"
	xfer_wait "$D/xfer"; rc=$?
	tap_diag "(b) a's natctl show: $(show "$D" a | sed -nE 's/^  rendezvous: //p')"
	tap_check "(b) the transfer survives the rebinding: all 6 MiB intact ($(tail -n1 "$D/xfer-send.log"))" \
		test $rc = 0
	tap_check "(b) afterwards both agents report a direct path again" wait_for 15 both_direct "$D"
	tap_diag "(b) $(ms_since "$t0") ms after the rebinding"
	diag_show "$D"
	ep=$(show "$D" b | sed -nE 's/^  endpoint: //p')
	tap_is "(b) b's natctl show: a's endpoint is its new external port" "$ep" "$wan:$newport"
	judged_xfer ra rb "$D/after"
	tap_is "(b) after the rebinding: a 1 MiB transfer takes the direct path (counters)" \
		"$XFER_RC/$JUDGE" "0/direct"
	stop "$PID_a" "$PID_b"
}

# --------------------------------------------------------------- (c) upgrade
part_c() {
	local t0 r0 r1 grew ping_pid sent got lost
	if ! pair upgrade ua ub 42003; then
		tap_fail "(c) agents behind a symmetric and a port-restricted NAT start" "$(tail -n 3 "$D"/?.log)"
		stop "$PID_a" "$PID_b"; return
	fi
	tap_check "(c) symmetric <-> port: ping through the tunnel" wait_for 15 lab_exec ua ping -c1 -W1 10.77.0.2
	judged_xfer ua ub "$D/before"
	tap_check "(c) it starts relayed: natctl on both sides" both_relay "$D"
	tap_is "(c) it starts relayed: a 1 MiB transfer passes the rendezvous (counters)" \
		"$XFER_RC/$JUDGE" "0/relay"
	diag_show "$D"
	lab_spawn ua "$D/ping.log" ping -n -i 0.1 -s 1000 -W 1 -w 60 10.77.0.2
	ping_pid=$LAB_LAST_PID
	sleep 1
	t0=$EPOCHREALTIME
	if lab_set_nat ua-gw port && lab_flush_conntrack ua-gw; then
		tap_ok "(c) the symmetric router becomes port-restricted, its conntrack flushed"
	else
		tap_fail "(c) the symmetric router becomes port-restricted, its conntrack flushed"
	fi
	# Direct by natctl, and the rendezvous's counter still over a second.
	grew=-
	upgraded() {
		both_direct "$D" || return 1
		r0=$(rdv_bytes); sleep 1; r1=$(rdv_bytes)
		grew=$((r1 - r0))
		((grew < 4000))
	}
	if wait_for 30 upgraded; then
		tap_ok "(c) within 30 s: a direct path on both sides, the relay idle"
	else
		tap_fail "(c) within 30 s: a direct path on both sides, the relay idle" \
			"natctl: a $(path_of "$D" a), b $(path_of "$D" b)"
	fi
	tap_diag "(c) $(ms_since "$t0") ms after the NAT change; the rendezvous port received $grew bytes in the last second"
	diag_show "$D"
	kill -INT "$ping_pid" 2>/dev/null
	wait_for 5 sh -c "! kill -0 $ping_pid 2>/dev/null" || kill -KILL "$ping_pid" 2>/dev/null
	wait "$ping_pid" 2>/dev/null
	sent=$(sed -nE 's/^([0-9]+) packets transmitted.*/\1/p' "$D/ping.log")
	got=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' "$D/ping.log")
	lost=$(( ${sent:-0} - ${got:-0} ))
	tap_diag "(c) ping during the upgrade: ${got:-?} of ${sent:-?} answered"
	tap_check "(c) the ping lost at most $MAX_LOST packets (100 ms apart)" \
		test -n "${sent:-}" -a "$lost" -le "$MAX_LOST"
	stop "$PID_a" "$PID_b"
}

for p in $PARTS; do
	case $p in a|b|c) "part_$p" ;; *) tap_fail "unknown part '$p' (PARTS: a b c)" ;; esac
done
stop "$RDV_PID"
tap_done
