#!/usr/bin/env bash
# bench/rendezvous: the rendezvous service (natagent with [Rendezvous]) under
# registration load, in the namespace lab: the rendezvous on one lab server,
# the load generator (bench/rdvload.c) on another, veth + bridge between.
#
#  1. registrations per second: N simulated peers, each with its own key, at
#     most RDV_CONCURRENCY handshakes in flight; from the first handshake to
#     the last REGISTERED, with the latency median and p99, and the
#     rendezvous's CPU time per registration (utime+stime, /proc/PID/stat).
#  2. resident memory per registered peer: the rendezvous's VmRSS while
#     rdvload holds all N sessions open (--hold), less its VmRSS before the
#     run, over N; printed against the target of 4 KiB per registered peer.
#  3. relayed against direct tunnel throughput: relay_throughput, at the end.
#
# Each N runs against a freshly started rendezvous: memory that an earlier
# run freed stays in malloc's arenas and would hide the next run's growth.
# The load generator shares the machine's cores with the rendezvous: the
# rate is the pair's, so read it next to both CPU figures.
#
#   RDV_PEERS="1000 10000" RDV_CONCURRENCY=64 RDV_HOLD=4 bench/rendezvous.sh
#   NATAGENT=/path/natagent NATCTL=/path/natctl B=/tmp/build bench/rendezvous.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
B=${B:-build}
. "$top/scripts/lab.sh"
case $B in /*) bdir=$B ;; *) bdir=$top/$B ;; esac
load=$bdir/bench/rdvload
natagent=${NATAGENT:-$top/natagent}
natctl=${NATCTL:-$top/natctl}
PEERS=${RDV_PEERS:-1000 10000}
CONC=${RDV_CONCURRENCY:-64}   # the rendezvous admits 64 handshakes at once per source address
HOLD=${RDV_HOLD:-4}
DURATION=${RDV_DURATION:-120}   # rdvload's deadline for one run's registrations
TARGET_KIB=4
RDV_IP=198.18.0.10 LOAD_IP=198.18.0.50 PORT=3478

if [[ $(id -u) != 0 ]]; then echo "bench/rendezvous: needs root (namespaces)"; exit 0; fi
for t in "$load" "$natagent" "$natctl"; do
	[[ -x $t ]] || { echo "bench/rendezvous: $t not built (make bench)"; exit 1; }
done
for n in $PEERS; do
	[[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 100000)) ||
		{ echo "bench/rendezvous: RDV_PEERS: counts from 1 to 100000"; exit 1; }
done
[[ $HOLD =~ ^[0-9]+$ ]] && ((HOLD >= 2 && HOLD <= 60)) ||
	{ echo "bench/rendezvous: RDV_HOLD must be 2..60 seconds"; exit 1; }
[[ $DURATION =~ ^[0-9]+$ ]] && ((DURATION >= 5 && DURATION <= 3600)) ||
	{ echo "bench/rendezvous: RDV_DURATION must be 5..3600 seconds"; exit 1; }
lab_traps

lab_internet && lab_server rdv "$RDV_IP" && lab_server load "$LOAD_IP" || exit 1
umask 077
"$natctl" genkey > "$LAB_DIR/rdv.key" && "$natctl" pubkey < "$LAB_DIR/rdv.key" > "$LAB_DIR/rdv.pub" ||
	{ echo "bench/rendezvous: natctl genkey failed"; exit 1; }
RDV_KEY=$(cat "$LAB_DIR/rdv.pub")

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
kv() { sed -nE "s/.*(^| )$1=([^ ]*).*/\2/p" <<<"$2" | head -n1; }  # KEY LINE

# rdv_start N: a fresh rendezvous with room for N peers; sets RDV_PID.
rdv_start() {
	local log=$LAB_DIR/rdv-$1.log
	mkdir -p "$LAB_DIR/rdv-$1"
	cat > "$LAB_DIR/rdv-$1/rdv0.conf" <<CONF
[Interface]
PrivateKey = $(cat "$LAB_DIR/rdv.key")
[Rendezvous]
Listen = $RDV_IP:$PORT
MaxPeers = $(($1 + 1000))
CONF
	lab_spawn rdv "$log" "$natagent" -d -B -c "$LAB_DIR/rdv-$1/rdv0.conf"
	RDV_PID=$LAB_LAST_PID
	wait_for 10 grep -q ready "$log" && wait_for 5 lab_udp_bound rdv "$RDV_IP" "$PORT" ||
		{ echo "bench/rendezvous: the rendezvous did not start:"; cat "$log"; return 1; }
}

# rdv_stop N: TERM, then its exit counters ("N registered, ...") from the log.
# A registration ends when its session does: 3 PTO after the peer's close,
# which the handshake burst's RTT samples stretch to seconds. Nothing shows
# that from outside, hence a fixed wait, so that "0 registered" at exit
# confirms that every close arrived.
rdv_stop() {
	sleep 3
	kill -TERM "$RDV_PID" 2>/dev/null
	wait_for 10 sh -c "! kill -0 $RDV_PID 2>/dev/null" || kill -KILL "$RDV_PID" 2>/dev/null
	wait "$RDV_PID" 2>/dev/null
	sed -n 's/.*rendezvous: \([0-9]* registered.*\)/    rendezvous at exit: \1/p' "$LAB_DIR/rdv-$1.log"
}

# measure N: one run; sets RATE_N P50_N P99_N CPU_N (ms/registration),
# CCPU_N (rdvload's ms/registration), BEFORE_N HELD_N (KiB), PER_N (KiB/peer).
measure() {
	local n=$1 log=$LAB_DIR/load-$1.log pid t0 t1 before held out ok limit
	rdv_start "$n" || return 1
	sleep 0.5   # let the start-up allocations settle
	before=$(rss_kib "$RDV_PID")
	t0=$(cpu_ticks "$RDV_PID")
	limit=$((DURATION + HOLD + 30))
	lab_spawn load "$log" timeout "$limit" "$load" --server "$RDV_IP:$PORT" --server-key "$RDV_KEY" \
		--peers "$n" --concurrency "$CONC" --hold "$HOLD" --duration "$DURATION"
	pid=$LAB_LAST_PID
	if ! wait_for $((DURATION + 15)) grep -q "holding" "$log"; then
		echo "bench/rendezvous: rdvload with $n peers never held its sessions:"
		wait_for $((HOLD + 10)) sh -c "! kill -0 $pid 2>/dev/null"
		tail -n 15 "$log"; rdv_stop "$n"; return 1
	fi
	t1=$(cpu_ticks "$RDV_PID")
	sleep 1     # the last handshakes' ACKs and frees
	held=$(rss_kib "$RDV_PID")
	wait_for $((HOLD + 20)) sh -c "! kill -0 $pid 2>/dev/null" || kill "$pid" 2>/dev/null
	wait "$pid"; ok=$?
	out=$(grep '^mode=register' "$log")
	echo "  $n peers: ${out:-no result}"
	grep -E 'why peers failed|^rdvload: +[0-9]+ x' "$log" | sed 's/^/    /'
	rdv_stop "$n"
	((ok == 0)) || { echo "bench/rendezvous: rdvload with $n peers failed (status $ok)"; return 1; }
	printf -v "RATE_$n" '%s' "$(kv rate "$out" | tr -d '/s')"
	printf -v "P50_$n" '%s' "$(kv p50_ms "$out")"
	printf -v "P99_$n" '%s' "$(kv p99_ms "$out")"
	printf -v "CPU_$n" '%s' "$(awk -v t=$((t1 - t0)) -v n="$n" -v hz="$(getconf CLK_TCK)" \
		'BEGIN { printf "%.2f", t / hz * 1000 / n }')"
	printf -v "CCPU_$n" '%s' "$(awk -v c="$(kv client_cpu_s "$out")" -v n="$n" \
		'BEGIN { printf "%.2f", c * 1000 / n }')"
	printf -v "BEFORE_$n" '%s' "$before"
	printf -v "HELD_$n" '%s' "$held"
	printf -v "PER_$n" '%s' "$(awk -v a="$held" -v b="$before" -v n="$n" \
		'BEGIN { printf "%.1f", (a - b) / n }')"
}

# relay_throughput: relayed against direct tunnel throughput on this lab.
# Two more lab servers, ta and tb, on the same bridge, natagent in tun mode on
# both, iperf3 TCP ta -> tb for RELAY_SECONDS through:
#   direct   static Endpoints, no Rendezvous: ta -> bridge -> tb
#   relayed  no Endpoint, Rendezvous = the rendezvous on rdv (RelayRate = 0,
#            RelayRateTotal = 0: no cap): ta -> rdv -> tb, the peer session
#            carried in the two rendezvous sessions' DATAGRAM frames
# Same hosts, same tun MTU (so the same TCP MSS) in both: the difference is the
# relay. "Relayed" is judged by an nftables counter on rdv's input to the
# rendezvous port, which must have seen at least the bytes iperf3 delivered.
# The relay's cost: the rendezvous's utime+stime per GB delivered.
# RELAY_SECONDS (default 4): iperf3's duration, once per path.
RELAY_T=${RELAY_SECONDS:-4}
# The tun MTU of both paths: a relayed datagram loses the relay header and the
# outer session's overhead, so the relayed path carries some 1330 bytes once
# PMTUD has run (1160 before), not the 1380 of bench/tunnel.
RELAY_MTU=1280
RELAY_TARGET=0.5
TP_A=198.18.0.61 TP_B=198.18.0.62

relay_judge_bytes() {
	lab_exec rdv nft list counter inet judge rdv_in | sed -nE 's/.*bytes ([0-9]+).*/\1/p'
}

# tp_conf NAME IFACE ADDR PEER PEERADDR [ENDPOINT]: a tun-mode host; with
# ENDPOINT the peer is dialed there, without it through the rendezvous.
tp_conf() {
	mkdir -p "$LAB_DIR/$1"
	{
		printf '[Interface]\nPrivateKey = %s\nListenPort = 40000\nMode = tun\n' "$(cat "$LAB_DIR/$1.key")"
		printf 'Address = %s/24\nMTU = %s\n' "$3" "$RELAY_MTU"
		[[ -n ${6:-} ]] || printf 'Rendezvous = %s:%s\nRendezvousKey = %s\n' "$RDV_IP" "$PORT" "$RDV_KEY"
		printf '[Peer]\nPublicKey = %s\nAllowedIPs = %s/32\n' "$(cat "$LAB_DIR/$4.pub")" "$5"
		[[ -z ${6:-} ]] || printf 'Endpoint = %s:40000\n' "$6"
	} > "$LAB_DIR/$1/$2.conf"
}

# tp_start NAME IFACE: natagent on host NAME; sets TP_PID_NAME.
tp_start() {
	local log=$LAB_DIR/tp-$1-$2.log
	lab_spawn "$1" "$log" "$natagent" -B -c "$LAB_DIR/$1/$2.conf"
	printf -v "TP_PID_$1" '%s' "$LAB_LAST_PID"
	wait_for 10 grep -qs ready "$log" ||
		{ echo "bench/rendezvous: natagent on $1 did not start:"; tail -n 5 "$log"; return 1; }
}

# tp_stop PID...: TERM, bounded wait, then KILL.
tp_stop() {
	local p
	for p in "$@"; do kill -TERM "$p" 2>/dev/null; done
	for p in "$@"; do
		wait_for 5 sh -c "! kill -0 $p 2>/dev/null" || kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
}

# tp_run NAME DEST RDVPID PIDS...: iperf3 ta -> DEST, then ping; sets TP_BPS_,
# TP_RTT_, TP_CPU_ (the PIDS', s/GB), TP_RCPU_ (RDVPID's, s/GB; "-" if none),
# TP_BYTES_ (delivered), TP_JUDGE_ (bytes into the rendezvous port meanwhile).
tp_run() {
	local name=$1 dest=$2 rpid=$3; shift 3
	local srv log=$LAB_DIR/iperf3-$1.log out bytes rtt c0 c1 r0=0 r1=0 j0 j1 p hz
	hz=$(getconf CLK_TCK)
	lab_spawn tb "$log" timeout $((RELAY_T + 40)) iperf3 -s -B "$dest" -1
	srv=$LAB_LAST_PID
	wait_for 5 sh -c "ip netns exec $(lab_ns tb) ss -Hltn src $dest:5201 | grep -q ." ||
		{ echo "bench/rendezvous: iperf3 server on $dest did not start"; cat "$log"; return 1; }
	lab_exec ta ping -c3 -i0.2 -W1 "$dest" >/dev/null   # warm up
	c0=0; for p in "$@"; do c0=$((c0 + $(cpu_ticks "$p"))); done
	[[ $rpid == - ]] || r0=$(cpu_ticks "$rpid")
	j0=$(relay_judge_bytes)
	out=$(lab_exec ta timeout $((RELAY_T + 25)) iperf3 -c "$dest" -t "$RELAY_T" -J)
	j1=$(relay_judge_bytes)
	[[ $rpid == - ]] || r1=$(cpu_ticks "$rpid")
	c1=0; for p in "$@"; do c1=$((c1 + $(cpu_ticks "$p"))); done
	bytes=$(sed -nE '/"sum_received"/,/}/ s/.*"bytes":[[:space:]]*([0-9]+).*/\1/p' <<<"$out" | head -n1)
	rtt=$(lab_exec ta ping -c20 -i0.05 -W1 -q "$dest" | sed -nE 's|.*= [0-9.]+/([0-9.]+)/.*|\1|p')
	wait_for 5 sh -c "! kill -0 $srv 2>/dev/null" || kill "$srv" 2>/dev/null
	wait "$srv" 2>/dev/null
	printf -v "TP_BYTES_$name" '%s' "${bytes:-0}"
	printf -v "TP_JUDGE_$name" '%s' "$((j1 - j0))"
	printf -v "TP_BPS_$name" '%s' "$(awk -v b="${bytes:-0}" -v t="$RELAY_T" 'BEGIN { printf "%.0f", b * 8 / t }')"
	printf -v "TP_RTT_$name" '%s' "${rtt:--}"
	printf -v "TP_CPU_$name" '%s' "$(awk -v d=$((c1 - c0)) -v hz="$hz" -v b="${bytes:-0}" \
		'BEGIN { printf "%.2f", b ? d / hz / (b / 1e9) : 0 }')"
	if [[ $rpid == - ]]; then
		printf -v "TP_RCPU_$name" '%s' -
	else
		printf -v "TP_RCPU_$name" '%s' "$(awk -v d=$((r1 - r0)) -v hz="$hz" -v b="${bytes:-0}" \
			'BEGIN { printf "%.2f", b ? d / hz / (b / 1e9) : 0 }')"
	fi
	[[ ${bytes:-0} -gt 0 ]] ||
		{ echo "bench/rendezvous: iperf3 $name delivered nothing:"; tail -n 5 <<<"$out"; return 1; }
}

relay_throughput() {
	local n tbig rlog=$LAB_DIR/rdv-relay.log rpid ok=1 mbps_d mbps_r ratio over
	echo "bench/rendezvous: relayed against direct tunnel: iperf3 TCP ${RELAY_T}s," \
		"natagent tun mode (MTU $RELAY_MTU), lab servers $TP_A -> $TP_B, rendezvous $RDV_IP:$PORT"
	command -v iperf3 >/dev/null || { echo "bench/rendezvous: iperf3 missing (make deps)"; return 1; }
	[[ $RELAY_T =~ ^[0-9]+$ ]] && ((RELAY_T >= 1 && RELAY_T <= 60)) ||
		{ echo "bench/rendezvous: RELAY_SECONDS must be 1..60"; return 1; }
	lab_server ta "$TP_A" && lab_server tb "$TP_B" || return 1
	for n in ta tb; do
		"$natctl" genkey > "$LAB_DIR/$n.key" && "$natctl" pubkey < "$LAB_DIR/$n.key" > "$LAB_DIR/$n.pub" ||
			{ echo "bench/rendezvous: natctl genkey failed"; return 1; }
	done
	# The judge of "relayed": bytes arriving at the rendezvous port.
	lab_exec rdv nft -f - <<-NFT || { echo "bench/rendezvous: nft failed on rdv"; return 1; }
	table inet judge {
		counter rdv_in {}
		chain in { type filter hook input priority 0; udp dport $PORT counter name rdv_in; }
	}
	NFT

	# (1) direct: static Endpoints, no rendezvous involved
	tp_conf ta nt0 10.97.0.1 tb 10.97.0.2 "$TP_B" && tp_conf tb nt0 10.97.0.2 ta 10.97.0.1 "$TP_A" || return 1
	tp_start ta nt0 && tp_start tb nt0 || { tp_stop ${TP_PID_ta:-} ${TP_PID_tb:-}; return 1; }
	if wait_for 15 lab_exec ta ping -c1 -W1 10.97.0.2 >/dev/null; then
		tp_run direct 10.97.0.2 - "$TP_PID_ta" "$TP_PID_tb" || ok=0
	else
		echo "bench/rendezvous: the direct tunnel did not come up:"; tail -n 5 "$LAB_DIR"/tp-t?-nt0.log; ok=0
	fi
	tp_stop "$TP_PID_ta" "$TP_PID_tb"
	unset TP_PID_ta TP_PID_tb
	((ok)) || return 1

	# (2) relayed: no Endpoint; the rendezvous relays, its rate limits off
	mkdir -p "$LAB_DIR/rdv-relay"
	cat > "$LAB_DIR/rdv-relay/rdv0.conf" <<-CONF
	[Interface]
	PrivateKey = $(cat "$LAB_DIR/rdv.key")
	[Rendezvous]
	Listen = $RDV_IP:$PORT
	RelayRate = 0
	RelayRateTotal = 0
	CONF
	lab_spawn rdv "$rlog" "$natagent" -B -c "$LAB_DIR/rdv-relay/rdv0.conf"
	rpid=$LAB_LAST_PID
	if ! { wait_for 10 grep -qs ready "$rlog" && wait_for 5 lab_udp_bound rdv "$RDV_IP" "$PORT"; }; then
		echo "bench/rendezvous: the relaying rendezvous did not start:"; tail -n 5 "$rlog"
		tp_stop "$rpid"; return 1
	fi
	tp_conf ta rl0 10.96.0.1 tb 10.96.0.2 && tp_conf tb rl0 10.96.0.2 ta 10.96.0.1 &&
		tp_start ta rl0 && tp_start tb rl0 || { tp_stop ${TP_PID_ta:-} ${TP_PID_tb:-} "$rpid"; return 1; }
	if ! wait_for 10 grep -qs "registered at rendezvous" "$LAB_DIR/tp-ta-rl0.log" ||
		! wait_for 10 grep -qs "registered at rendezvous" "$LAB_DIR/tp-tb-rl0.log"; then
		echo "bench/rendezvous: ta and tb did not both register:"; tail -n 5 "$LAB_DIR"/tp-t?-rl0.log; ok=0
	elif ! wait_for 20 lab_exec ta ping -c1 -W1 10.96.0.2 >/dev/null; then
		echo "bench/rendezvous: the relayed tunnel did not come up:"; tail -n 5 "$LAB_DIR"/tp-t?-rl0.log; ok=0
	else
		grep -h 'session up' "$LAB_DIR"/tp-t?-rl0.log | sed 's/^/    /'
		tp_run relayed 10.96.0.2 "$rpid" "$TP_PID_ta" "$TP_PID_tb" || ok=0
	fi
	tp_stop "$TP_PID_ta" "$TP_PID_tb" "$rpid"
	sed -n 's/.*rendezvous: \([0-9]* registered.*\)/    rendezvous at exit: \1/p' "$rlog" | tail -n 1
	((ok)) || return 1
	for n in nt0 rl0; do
		tbig=$(sed -nE 's/.*: peer .*: sent .*dropped: ([0-9]+) too big.*/\1/p' "$LAB_DIR/tp-ta-$n.log" | tail -n 1)
		((${tbig:-0} == 0)) || echo "    note: ta ($n) answered $tbig packets with ICMP too big:" \
			"TCP may have run with a smaller MSS than MTU $RELAY_MTU allows"
	done

	mbps_d=$(awk -v b="$TP_BPS_direct" 'BEGIN { printf "%.0f", b / 1e6 }')
	mbps_r=$(awk -v b="$TP_BPS_relayed" 'BEGIN { printf "%.0f", b / 1e6 }')
	ratio=$(awk -v a="$TP_BPS_relayed" -v b="$TP_BPS_direct" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
	over=$(awk -v j="$TP_JUDGE_relayed" -v b="$TP_BYTES_relayed" 'BEGIN { printf "%.2f", (b > 0 ? j / b : 0) }')
	printf '%-30s %10s %9s %8s %15s %13s %16s\n' path Mbit/s "x direct" "RTT ms" "hosts CPU s/GB" \
		"rdv CPU s/GB" "bytes at rdv"
	printf '%-30s %10s %9s %8s %15s %13s %16s\n' "direct (static Endpoints)" "$mbps_d" 1.00 \
		"$TP_RTT_direct" "$TP_CPU_direct" - "$TP_JUDGE_direct"
	printf '%-30s %10s %9s %8s %15s %13s %16s\n' "relayed (via the rendezvous)" "$mbps_r" "$ratio" \
		"$TP_RTT_relayed" "$TP_CPU_relayed" "$TP_RCPU_relayed" "$TP_JUDGE_relayed"
	echo "relayed bytes: the rendezvous port received $TP_JUDGE_relayed bytes while iperf3 delivered" \
		"$TP_BYTES_relayed (x$over)"
	if ((TP_JUDGE_relayed < TP_BYTES_relayed)); then
		echo "bench/rendezvous: fewer bytes reached the rendezvous than iperf3 delivered: not relayed"
		return 1
	fi
	echo "relay cost: the rendezvous spent $TP_RCPU_relayed CPU s per GB relayed"
	echo "ratio relayed/direct throughput: $ratio  (target >= $RELAY_TARGET:" \
		"$(awk -v r="$ratio" -v t=$RELAY_TARGET 'BEGIN { print (r >= t ? "met" : "NOT met") }'))"
}

rc=0
echo "bench/rendezvous: rdvload on $LOAD_IP -> rendezvous $RDV_IP:$PORT over veth + bridge," \
	"$CONC handshakes in flight, sessions held ${HOLD}s"
done_n=()
for n in $PEERS; do
	if measure "$n"; then done_n+=("$n"); else rc=1; fi
done
if ((${#done_n[@]})); then
	printf '%-8s %10s %8s %8s %13s %13s %11s %11s %9s\n' peers "reg/s" "p50 ms" "p99 ms" \
		"rdv cpu ms" "load cpu ms" "RSS before" "RSS held" "KiB/peer"
	for n in "${done_n[@]}"; do
		r=RATE_$n p5=P50_$n p9=P99_$n c=CPU_$n cc=CCPU_$n b=BEFORE_$n h=HELD_$n k=PER_$n
		printf '%-8s %10s %8s %8s %13s %13s %8s KiB %7s KiB %9s\n' "$n" "${!r}" "${!p5}" "${!p9}" \
			"${!c}" "${!cc}" "${!b}" "${!h}" "${!k}"
	done
	echo "(cpu ms: per registration, of the rendezvous and of rdvload)"
	for n in "${done_n[@]}"; do
		r=RATE_$n p5=P50_$n p9=P99_$n
		echo "registrations per second ($n peers): ${!r} (latency p50 ${!p5} ms, p99 ${!p9} ms)"
	done
	for n in "${done_n[@]}"; do
		k=PER_$n
		echo "memory per registered peer ($n peers): ${!k} KiB = $(awk -v k="${!k}" -v t=$TARGET_KIB \
			'BEGIN { printf "%.1f", k / t }') x the $TARGET_KIB KiB target"
	done
fi

relay_throughput || rc=1
exit $rc
