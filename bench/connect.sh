#!/usr/bin/env bash
# bench/connect: how fast two natagents behind NATs get a tunnel, in the
# namespace lab: the rendezvous (QUIC + STUN on 198.18.0.10:3478, RFC 5780
# from 198.18.0.11:3479), natagents in tun mode with no Endpoint.
#
#  1. port-restricted <-> port-restricted (hole punching), CONNECT_RUNS runs:
#     the time from starting the second agent to the first tunnel packet on
#     the direct path, median and min/max, against the target of well under
#     300 ms; and the packets each side sent to get there.
#  2. symmetric <-> port-restricted (no direct path: the relay), the same
#     runs: the time to the first relayed tunnel packet.
#  3. upgrade: on such a relayed pair, the symmetric router turns
#     port-restricted (lab_set_nat + lab_flush_conntrack) while a ping runs
#     through the tunnel; the time from that switch to the first tunnel
#     packet on the direct path (the agents notice the new mapping when the
#     rendezvous reports it and punch again at once), then the router goes
#     back to symmetric.
#
# Method. The first agent (A) is up and registered; tcpdump records every UDP
# packet on both sites' router WANs (pcap, packet-buffered) and A pings B
# through the tunnel every 10 ms (600-byte payload) from just before B
# starts; t0 is taken just before B's natagent is spawned. Afterwards, from
# A's router's capture (kernel timestamps, the same clock as t0):
#   direct  the first ping reply from B's public address straight to A's: the
#           first UDP packet between the two WAN addresses of a tunnel ping's
#           size (UDP length 640..800; a relayed one is larger and comes from
#           the rendezvous). Also shown: the first STUN check between the two
#           (the punch starting) and the first non-STUN packet between them
#           (QUIC probing the new path).
#   relayed the first ping reply at all (ping -D's timestamp), which on this
#           pair can only have come through the relay.
# The ping interval bounds the error: the path may be usable up to 10 ms
# before the next ping uses it. Packets sent to get there: UDP packets
# leaving each router's WAN from its site's public address between t0 and
# that moment, split into those to the other site and those to the
# rendezvous (its two addresses).
#
#   CONNECT_RUNS=5 CONNECT_WAIT=10 bench/connect.sh
#   NATAGENT=/path/natagent NATCTL=/path/natctl bench/connect.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
. "$top/scripts/lab.sh"
. "$top/scripts/agentlab.sh"
natagent=${NATAGENT:-$top/natagent}
natctl=${NATCTL:-$top/natctl}
RUNS=${CONNECT_RUNS:-5}
WAIT=${CONNECT_WAIT:-10}   # s per run for the tunnel (and the direct path) to appear
TARGET_MS=300
RDV=198.18.0.10 RDV2=198.18.0.11

if [[ $(id -u) != 0 ]]; then echo "bench/connect: needs root (namespaces)"; exit 0; fi
for t in "$natagent" "$natctl"; do
	[[ -x $t ]] || { echo "bench/connect: $t not built (make)"; exit 1; }
done
command -v tcpdump >/dev/null || { echo "bench/connect: tcpdump missing (make deps)"; exit 1; }
[[ $RUNS =~ ^[0-9]+$ ]] && ((RUNS >= 1 && RUNS <= 50)) ||
	{ echo "bench/connect: CONNECT_RUNS must be 1..50"; exit 1; }
[[ $WAIT =~ ^[0-9]+$ ]] && ((WAIT >= 2 && WAIT <= 60)) ||
	{ echo "bench/connect: CONNECT_WAIT must be 2..60 seconds"; exit 1; }
lab_traps

setup() {
	lab_internet && lab_server rdv "$RDV" "$RDV2" &&
		lab_site pa port && lab_site pb port && lab_site sy symmetric || return 1
	rdv_start   # natagent -B: no debug log (-d), as for the agents below
}

# first_time PCAP FILTER: the timestamp of the first packet matching FILTER.
first_time() {
	tcpdump -r "$1" -tt -n -c 1 "$2" 2>/dev/null | awk '{ print $1; exit }'
}

# count_sent PCAP SRC DSTS T0 T1: packets from SRC to any of DSTS (space-
# separated) with T0 <= time < T1.
count_sent() {
	local f="udp and src host $2 and (" d sep=
	for d in $3; do f+="$sep dst host $d"; sep=" or"; done
	f+=" )"
	tcpdump -r "$1" -tt -n "$f" 2>/dev/null |
		awk -v a="$4" -v b="$5" '$1 >= a && $1 < b { n++ } END { print n + 0 }'
}

ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }

# run KIND I SITE_A SITE_B: one run; KIND direct or relay. Prints a row and
# appends the headline time (ms) to TIMES_KIND; a run that never got there
# prints why and adds nothing.
run() {
	local kind=$1 i=$2 sa=$3 sb=$4 d=$LAB_DIR/$1-$2 port=$((43000 + $2 + ${5:-0}))
	local wa wb ra rb ta_pid tb_pid ping_pid t0 t1 tcheck tquic n ok=0 row
	pair_conf "$d" "$port" || return 1
	wa=$(lab_wan_ip "$sa") wb=$(lab_wan_ip "$sb")
	ra=$(lab_routers "$sa") rb=$(lab_routers "$sb"); ra=${ra%% *} rb=${rb%% *}
	PID_a='' PID_b=''
	agent_spawn "$d" "$sa" a   # no debug log (-d): it would slow the agent
	if ! wait_for 10 grep -qs "registered at rendezvous" "$d/a.log"; then
		echo "  run $i: the first agent did not register:"; tail -n 3 "$d/a.log" | sed 's/^/    /'
		stop "$PID_a"; return 1
	fi
	lab_spawn "$ra" "$d/tcpdump-a.log" tcpdump --immediate-mode -U -n -s 96 -i wan -w "$d/a.pcap" udp; ta_pid=$LAB_LAST_PID
	lab_spawn "$rb" "$d/tcpdump-b.log" tcpdump --immediate-mode -U -n -s 96 -i wan -w "$d/b.pcap" udp; tb_pid=$LAB_LAST_PID
	wait_for 5 grep -qs "listening on" "$d/tcpdump-a.log" && wait_for 5 grep -qs "listening on" "$d/tcpdump-b.log"
	lab_spawn "$sa" "$d/ping.log" ping -D -n -i 0.01 -s 600 -W 1 -w $((WAIT + 5)) 10.77.0.2
	ping_pid=$LAB_LAST_PID
	t0=$EPOCHREALTIME
	agent_spawn "$d" "$sb" b
	if [[ $kind == direct ]]; then
		wait_for "$WAIT" sh -c "tcpdump -r '$d/a.pcap' -n -c 1 \
			'udp and src host $wb and dst host $wa and udp[4:2] > 640 and udp[4:2] < 800' 2>/dev/null | grep -q ." &&
			ok=1
	else
		wait_for "$WAIT" grep -q ' bytes from ' "$d/ping.log" && ok=1
	fi
	sleep 0.1   # the last packets into the captures
	stop "$ping_pid" "$ta_pid" "$tb_pid"
	local final
	final="$(path_of "$d" a)/$(path_of "$d" b)"
	stop "$PID_a" "$PID_b"
	for n in $(lab_routers "$sa") $(lab_routers "$sb"); do lab_flush_conntrack "$n"; done
	if ((!ok)); then
		printf '  %-4s %s\n' "$i" "no $kind tunnel packet within ${WAIT}s (natctl: $final)"
		return 0
	fi
	if [[ $kind == direct ]]; then
		t1=$(first_time "$d/a.pcap" "udp and src host $wb and dst host $wa and udp[4:2] > 640 and udp[4:2] < 800")
		tcheck=$(first_time "$d/a.pcap" "udp and ((src host $wa and dst host $wb) or (src host $wb and dst host $wa)) and udp[12:4] = 0x2112a442")
		tquic=$(first_time "$d/a.pcap" "udp and ((src host $wa and dst host $wb) or (src host $wb and dst host $wa)) and udp[12:4] != 0x2112a442")
	else
		t1=$(sed -nE 's/^\[([0-9.]+)\] [0-9]+ bytes from .*/\1/p' "$d/ping.log" | head -n1)
	fi
	row=$(printf '%-4s %9s %11s %11s %8s %8s %8s %8s %s' "$i" "$(ms "$t0" "$t1")" \
		"${tcheck:+$(ms "$t0" "$tcheck")}" "${tquic:+$(ms "$t0" "$tquic")}" \
		"$(count_sent "$d/a.pcap" "$wa" "$wb" "$t0" "$t1")" \
		"$(count_sent "$d/b.pcap" "$wb" "$wa" "$t0" "$t1")" \
		"$(count_sent "$d/a.pcap" "$wa" "$RDV $RDV2" "$t0" "$t1")" \
		"$(count_sent "$d/b.pcap" "$wb" "$RDV $RDV2" "$t0" "$t1")" "$final")
	echo "  $row"
	eval "TIMES_$kind+=(\"$(ms "$t0" "$t1")\")"
}

# upgrade I: symmetric (sy) <-> port (pb) up on the relay, then sy's router
# becomes port-restricted; appends the ms from the switch to the first
# direct tunnel packet to TIMES_upgrade.
upgrade() {
	local i=$1 d=$LAB_DIR/upgrade-$1 port=$((43200 + $1)) wa wb ra ta_pid ping_pid t0 t1 n final
	pair_conf "$d" "$port" || return 1
	wa=$(lab_wan_ip sy) wb=$(lab_wan_ip pb) ra=sy-gw
	PID_a='' PID_b=''
	agent_spawn "$d" sy a && agent_spawn "$d" pb b || return 1
	lab_spawn sy "$d/ping.log" ping -D -n -i 0.01 -s 600 -W 1 -w $((WAIT + 20)) 10.77.0.2
	ping_pid=$LAB_LAST_PID
	if ! wait_for "$WAIT" grep -q ' bytes from ' "$d/ping.log"; then
		printf '  %-4s %s
' "$i" "no relayed tunnel within ${WAIT}s"
		stop "$ping_pid" "$PID_a" "$PID_b"; return 0
	fi
	lab_spawn "$ra" "$d/tcpdump-a.log" tcpdump --immediate-mode -U -n -s 96 -i wan -w "$d/a.pcap" udp
	ta_pid=$LAB_LAST_PID
	wait_for 5 grep -qs "listening on" "$d/tcpdump-a.log"
	t0=$EPOCHREALTIME
	lab_set_nat "$ra" port && lab_flush_conntrack "$ra"
	local f="udp and src host $wb and dst host $wa and udp[4:2] > 640 and udp[4:2] < 800" ok=0
	wait_for $((WAIT + 10)) sh -c "tcpdump -r '$d/a.pcap' -n -c 1 '$f' 2>/dev/null | grep -q ." && ok=1
	sleep 0.1
	stop "$ping_pid" "$ta_pid"
	final="$(path_of "$d" a)/$(path_of "$d" b)"
	stop "$PID_a" "$PID_b"
	lab_set_nat "$ra" symmetric
	for n in $ra $(lab_routers pb); do lab_flush_conntrack "$n"; done
	if ((!ok)); then
		printf '  %-4s %s
' "$i" "no direct tunnel packet within $((WAIT + 10))s of the switch (natctl: $final)"
		return 0
	fi
	t1=$(first_time "$d/a.pcap" "$f")
	printf '  %-4s %9s %s
' "$i" "$(ms "$t0" "$t1")" "$final"
	TIMES_upgrade+=("$(ms "$t0" "$t1")")
}

# stats NAME VALUES...: "median M ms (min A, max B, N runs)".
stats() {
	shift
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "median %.1f ms (min %.1f, max %.1f, %d runs)", m, v[1], v[NR], NR }'
}

if ! setup; then
	echo "bench/connect: the lab or the rendezvous did not come up:"; tail -n 5 "$LAB_DIR/rdv.log" 2>/dev/null
	exit 1
fi
TIMES_direct=() TIMES_relay=() TIMES_upgrade=()
hdr=$(printf '%-4s %9s %11s %11s %8s %8s %8s %8s %s' run ms "1st check" "1st QUIC" "A->B" "B->A" \
	"A->rdv" "B->rdv" "natctl A/B")
echo "bench/connect: natagent tun mode, no Endpoint; rendezvous $RDV:3478; $RUNS runs per pair," \
	"up to ${WAIT}s each; times in ms from spawning the second agent (B)"
echo "port-restricted <-> port-restricted: to the first tunnel packet on the direct path (a ping reply" \
	"from B's public address seen on A's router WAN; pings every 10 ms); packets each side's WAN sent" \
	"until then, to the other site and to the rendezvous"
echo "  $hdr"
for ((r = 1; r <= RUNS; r++)); do run direct "$r" pa pb || true; done
echo "symmetric <-> port-restricted: to the first relayed tunnel packet (the first ping reply; ping -D)"
echo "  $hdr"
for ((r = 1; r <= RUNS; r++)); do run relay "$r" sy pb 100 || true; done
echo "upgrade: the symmetric router becomes port-restricted under a relayed tunnel; ms from the" \
	"switch to the first direct tunnel packet"
printf '  %-4s %9s %s\n' run ms "natctl A/B"
for ((r = 1; r <= RUNS; r++)); do upgrade "$r" || true; done
stop "$RDV_PID"

rc=0
if ((${#TIMES_direct[@]})); then
	line=$(stats direct "${TIMES_direct[@]}")
	med=$(sed -nE 's/^median ([0-9.]+).*/\1/p' <<<"$line")
	echo "direct path (port <-> port): $line; target well under $TARGET_MS ms:" \
		"$(awk -v m="$med" -v t=$TARGET_MS 'BEGIN { print (m < t ? "met" : "NOT met") }')"
else
	echo "direct path (port <-> port): no run reached it within ${WAIT}s; target well under $TARGET_MS ms: NOT met"
	rc=1
fi
if ((${#TIMES_relay[@]})); then
	echo "relayed path (symmetric <-> port): $(stats relay "${TIMES_relay[@]}")"
else
	echo "relayed path (symmetric <-> port): no run got a tunnel packet within ${WAIT}s"
	rc=1
fi
if ((${#TIMES_upgrade[@]})); then
	echo "relay -> direct upgrade after the NAT change: $(stats upgrade "${TIMES_upgrade[@]}")"
else
	echo "relay -> direct upgrade: no run reached the direct path"
	rc=1
fi
exit $rc
