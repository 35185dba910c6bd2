#!/usr/bin/env bash
# The NAT matrix: does every pair of NAT kinds get a direct path by hole
# punching, and does the relay carry exactly the pairs that cannot?
#
# One lab: the rendezvous (QUIC + STUN on 198.18.0.10:3478, RFC 5780 from
# 198.18.0.11:3479, so that agents learn their NAT's mapping and filtering)
# and two sites of each kind (public eim addr port symmetric cgnat), built
# once. For each unordered pair of kinds, a kind with itself included (21
# pairs), the first site of the first kind and the second site of the second
# kind get two fresh natagents in tun mode (fresh keys, no Endpoint, a
# ListenPort of the pair's own so that no NAT state of an earlier pair
# applies; 10.77.0.1 on the first, 10.77.0.2 on the second). The first is
# registered before the second starts; then:
#  - within 15 s a ping crosses the tunnel; for a pair expected direct, up to
#    8 s more for both agents to report a direct path;
#  - ping and a 1 MiB TCP transfer through the tunnel, every byte checked
#    (xfer, scripts/agentlab.sh: iperf3 cannot tell that all arrived);
#  - the path is judged twice: by the rendezvous's byte counter on its port
#    during the transfer (relayed: at least half the transfer's bytes; direct:
#    under 5 %) and by `natctl show` on both
#    sides (`endpoint:` or `path: relay via`); both must agree, and agree
#    with RFC 4787: relayed only for {port, symmetric}, {symmetric,
#    symmetric} and {cgnat, symmetric} (a symmetric NAT's fresh port for the
#    peer is reachable only through a NAT that does not filter on the port;
#    cgnat here is masquerade behind masquerade, i.e. port-restricted),
#    direct for every other pair;
#  - on a relayed pair both sides' `natctl show` end up (within 25 s, once
#    discovery has found both NATs' behaviour) with a verdict that names the
#    reason: no direct path without port prediction.
# The `punch:`, `pair:` and `nat:` lines are printed, not checked.
# At the end the matrix as diagnostics: pair, path, the time from starting
# the second agent to the first ping answered (any path), to the first ping
# answered on the final path, and to natctl on the first host reporting the
# final path; the verdict of relayed pairs.
#
# Timing: a ping of 600 bytes every 20 ms runs from the first host from just
# before the second agent starts. "First ping on the direct path" is the
# first such reply seen by tcpdump on the first site's outermost router's
# WAN coming straight from the second site's public address (sized as a
# tunnel packet: UDP length 640..800; relayed ones come from the rendezvous
# and are larger); natctl is polled every ~50 ms.
#
#   NATAGENT=/path/natagent NATCTL=/path/natctl tests/netns/nat_matrix.sh
#   PAIRS="port/port symmetric/port" tests/netns/nat_matrix.sh   (a subset)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/scripts/lab.sh"
. "$top/scripts/agentlab.sh"
. "$here/lib.sh"

tap_needs python3 tcpdump
lab_traps

RDV=198.18.0.10 RDV2=198.18.0.11
KINDS=(public eim addr port symmetric cgnat)
UP_WAIT=15       # s from the second agent's start to a working ping
DIRECT_WAIT=8    # s more for a pair expected direct to report it
PING_SIZE=600    # tunnel pings: UDP length ~650-700 direct, ~750-830 relayed
XFER_BYTES=1048576

# expect K1 K2: relay or direct, by RFC 4787 (see the top).
expect() {
	case " $1/$2 " in
	" port/symmetric " | " symmetric/port " | " symmetric/symmetric " | \
		" cgnat/symmetric " | " symmetric/cgnat ") echo relay ;;
	*) echo direct ;;
	esac
}

setup() {
	local k
	lab_internet && lab_server rdv "$RDV" "$RDV2" || return 1
	for k in "${KINDS[@]}"; do lab_site "${k}1" "$k" && lab_site "${k}2" "$k" || return 1; done
	# The judge of "relayed": packets reaching the rendezvous's QUIC port.
	rdv_judge || return 1
	rdv_start -d
}

# run_pair I K1 K2: one pair of the matrix; appends a row to MATRIX.
run_pair() {
	local i=$1 k1=$2 k2=$3 a="${2}1" b="${3}2"
	local d=$LAB_DIR/pair$i-$k1-$k2 want port=$((41000 + i)) name="$k1/$k2"
	local wa wb ra t0 tping='' tdirect='' tctl_relay='' tctl_direct='' pa pb now deadline
	local ping_pid td_pid rc r0 r1 seen judge sa sb res verdict n
	want=$(expect "$k1" "$k2")
	pair_conf "$d" "$port" || return 1
	wa=$(lab_wan_ip "$a") wb=$(lab_wan_ip "$b")
	ra=$(lab_routers "$a"); ra=${ra%% *}
	PID_a='' PID_b=''
	if ! start "$d" "$a" a || ! wait_for 10 grep -qs "registered at rendezvous" "$d/a.log"; then
		tap_fail "$name: the first agent ($a) starts and registers" "$(tail -n 5 "$d/a.log")"
		stop "$PID_a"; MATRIX+=("$name|$want|error|-|-|-|-"); return 0
	fi
	# Direct tunnel packets from b's public address, as a's router sees them.
	lab_spawn "$ra" "$d/tcpdump.log" tcpdump --immediate-mode -l -tt -n -c 1 -i wan \
		"udp and src host $wb and dst host $wa and udp[4:2] > 640 and udp[4:2] < 800"
	td_pid=$LAB_LAST_PID
	wait_for 5 grep -qs "listening on" "$d/tcpdump.log"
	lab_spawn "$a" "$d/ping.log" ping -D -n -i 0.02 -s $PING_SIZE -W 1 \
		-w $((UP_WAIT + DIRECT_WAIT + 10)) 10.77.0.2
	ping_pid=$LAB_LAST_PID
	t0=$EPOCHREALTIME
	if ! start "$d" "$b" b; then
		tap_fail "$name: the second agent ($b) starts" "$(tail -n 5 "$d/b.log")"
		stop "$ping_pid" "$td_pid" "$PID_a" "$PID_b"; MATRIX+=("$name|$want|error|-|-|-|-"); return 0
	fi

	# Poll: first ping answered, natctl's path on a (and b), direct packets.
	deadline=$(awk -v t="$t0" -v w=$UP_WAIT 'BEGIN { printf "%.6f", t + w }')
	while :; do
		now=$EPOCHREALTIME
		if [[ -z $tping ]]; then
			seen=$(sed -nE 's/^\[([0-9.]+)\] [0-9]+ bytes from .*/\1/p' "$d/ping.log" | head -n1)
			if [[ -n $seen ]]; then
				tping=$seen
				[[ $want == direct ]] &&
					deadline=$(awk -v t="$now" -v w=$DIRECT_WAIT 'BEGIN { printf "%.6f", t + w }')
			fi
		fi
		[[ -n $tdirect ]] || tdirect=$(awk '/ IP /{ print $1; exit }' "$d/tcpdump.log")
		pa=$(path_of "$d" a)
		[[ $pa == relay && -z $tctl_relay ]] && tctl_relay=$now
		[[ $pa == direct && -z $tctl_direct ]] && tctl_direct=$now
		if [[ -n $tping ]]; then
			[[ $want == relay && $pa == relay ]] && break
			if [[ $want == direct && $pa == direct && -n $tdirect ]]; then
				pb=$(path_of "$d" b)
				[[ $pb == direct ]] && break
			fi
		fi
		awk -v n="$EPOCHREALTIME" -v d="$deadline" 'BEGIN { exit !(n < d) }' || break
		sleep 0.03
	done
	stop "$ping_pid" "$td_pid"
	[[ -n $tdirect ]] || tdirect=$(awk '/ IP /{ print $1; exit }' "$d/tcpdump.log")

	tap_check "$name: ping through the tunnel ($a -> $b)" lab_exec "$a" ping -c3 -i0.2 -W1 10.77.0.2
	r0=$(rdv_bytes)
	xfer "$a" "$b" 10.77.0.2 $XFER_BYTES 0 15 "$d/xfer"
	rc=$?
	r1=$(rdv_bytes)
	tap_check "$name: 1 MiB TCP transfer through the tunnel, every byte ($(tail -n1 "$d/xfer-send.log"))" \
		test "$rc" = 0
	seen=$((r1 - r0))
	if ((seen * 2 >= XFER_BYTES)); then judge=relay
	elif ((seen * 20 < XFER_BYTES)); then judge=direct
	else judge=unclear; fi
	sa=$(show "$d" a) sb=$(show "$d" b)
	printf '%s\n' "$sa" > "$d/show-a.txt"; printf '%s\n' "$sb" > "$d/show-b.txt"
	pa=$(path_in "$sa") pb=$(path_in "$sb")
	tap_diag "$name: the rendezvous port received $seen bytes during the $XFER_BYTES-byte transfer (counters: $judge);" \
		"natctl: $a $pa, $b $pb"
	tap_diag "$(grep -hE '^  (endpoint|path|punch|pair|nat|verdict|last path event):' <<<"$sa" | sed "s/^/$a:/")"
	tap_diag "$(grep -hE '^  (endpoint|path|punch|pair|nat|verdict|last path event):' <<<"$sb" | sed "s/^/$b:/")"
	if [[ $judge == "$pa" && $pa == "$pb" ]]; then res=$judge
	else res="mixed(counters $judge, natctl $pa/$pb)"; fi
	tap_is "$name: path ($a <-> $b)" "$res" "$want"
	verdict=$(sed -nE 's/^  verdict: //p' <<<"$sa" | head -n1)
	if [[ $want == relay ]]; then
		# Why relayed, in natctl's words: once both sides' discovery has
		# told what their NATs do (its filtering tests wait out probes
		# that rightly go unanswered) and a new attempt carried that, the
		# verdict names the reason on both sides.
		local why="^  verdict: .*no direct path possible without port prediction"
		tap_check "$name: natctl show on both sides says why it is relayed (no direct path without port prediction)" \
			wait_for 25 eval 'show "$d" a | grep -q "$why" && show "$d" b | grep -q "$why"'
		verdict=$(show "$d" a | sed -nE 's/^  verdict: //p' | head -n1)
		tap_diag "$(show "$d" a | grep -E '^  (nat|verdict):' | sed "s/^/$a:/")"
	fi
	stop "$PID_a" "$PID_b"
	for n in $(lab_routers "$a") $(lab_routers "$b"); do lab_flush_conntrack "$n"; done

	# The final path's times: a relayed pair's first answer is on its path;
	# a direct pair's is the first direct reply seen by tcpdump.
	local t_any=- t_final=- t_ctl=-
	[[ -z $tping ]] || t_any=$(ms_since "$t0" "$tping")
	case $res in
	relay) t_final=$t_any; [[ -z $tctl_relay ]] || t_ctl=$(ms_since "$t0" "$tctl_relay") ;;
	direct) [[ -z $tdirect ]] || t_final=$(ms_since "$t0" "$tdirect")
		[[ -z $tctl_direct ]] || t_ctl=$(ms_since "$t0" "$tctl_direct") ;;
	esac
	MATRIX+=("$name|$want|$res|$t_any|$t_final|$t_ctl|${verdict:--}")
}

if ! setup; then
	tap_fail "the lab: rendezvous and two sites of each NAT kind" "$(tail -n 5 "$LAB_DIR"/*.log 2>&1)"
	tap_done
fi
tap_ok "the lab: rendezvous and two sites of each NAT kind"

MATRIX=()
started=$EPOCHREALTIME
i=0
for ((x = 0; x < ${#KINDS[@]}; x++)); do
	for ((y = x; y < ${#KINDS[@]}; y++)); do
		i=$((i + 1))
		k1=${KINDS[x]} k2=${KINDS[y]}
		if [[ -n ${PAIRS:-} ]] && ! _lab_in "$k1/$k2" "$PAIRS" && ! _lab_in "$k2/$k1" "$PAIRS"; then
			continue
		fi
		t=$EPOCHREALTIME
		run_pair "$i" "$k1" "$k2" || tap_fail "$k1/$k2: setting up the pair"
		tap_diag "$k1/$k2: $(ms_since "$t") ms"
	done
done

tap_diag "NAT matrix ($(ms_since "$started") ms in all); times in ms from starting the second agent:"
tap_diag "$(printf '%-20s %-7s %-8s %9s %11s %12s  %s' pair expect got "1st ping" "ping final" "natctl final" verdict)"
for row in "${MATRIX[@]}"; do
	IFS='|' read -r p w g t1 t2 t3 v <<<"$row"
	tap_diag "$(printf '%-20s %-7s %-8s %9s %11s %12s  %s' "$p" "$w" "$g" "$t1" "$t2" "$t3" "$v")"
done
stop "$RDV_PID"
tap_done
