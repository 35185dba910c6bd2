#!/usr/bin/env bash
# bench/xdp_stun: natagent's XDP STUN responder against its userspace STUN
# service and coturn, all in one run (these machines are shared and noisy:
# only figures from one run compare, so the results are printed as ratios).
#
#  1. ns per answer of natpath_xdp under BPF_PROG_TEST_RUN
#     (build/bench/xdp_prog_bench): repeat mode behind a wrapper that puts
#     the request back each time, and one request per call;
#  2. one load generator (bench/stunload: a window of Binding requests,
#     bounded in time and count) over one veth path (load -> bridge ->
#     server) against (a) natagent with BPF, where XDP answers; (b) the same
#     natagent with -B, its userspace STUN service; (c) coturn. Each:
#     answers/s, loss, and CPU time per answer: for the userspace responders
#     utime+stime from /proc/PID/stat; for XDP the figures of 1, and the
#     program's own run time under this load from the kernel's BPF
#     statistics (turned on for the run only); for all three also the whole
#     machine's softirq and busy time per answer from /proc/stat, which
#     counts the generator and the path too, and anyone else's work.
#
# natagent serves Listen only here (no AlternateListen): with a second
# address its STUN ports stay in userspace (see agent/fastpath.c). The
# generator sends complete UDP checksums, as packets from a NIC arrive; a
# veth otherwise leaves partial ones that XDP passes to the stack.
#
#   BENCH_SECONDS=5 BENCH_WINDOW=256 bench/xdp_stun.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
B=${B:-build}
. "$top/scripts/lab.sh"
SECONDS_EACH=${BENCH_SECONDS:-5}
WINDOW=${BENCH_WINDOW:-256}
MAX_REQUESTS=20000000   # a bound on each run besides its time
load="$top/$B/bench/stunload"
progbench="$top/$B/bench/xdp_prog_bench"

if [[ $(id -u) != 0 ]]; then echo "bench/xdp_stun: needs root (namespaces, BPF)"; exit 0; fi
for t in "$load" "$progbench"; do
	[[ -x $t ]] || { echo "bench/xdp_stun: $t not built (make bench)"; exit 1; }
done
[[ $SECONDS_EACH =~ ^[0-9]+$ ]] && ((SECONDS_EACH >= 1 && SECONDS_EACH <= 60)) ||
	{ echo "bench/xdp_stun: BENCH_SECONDS must be 1..60"; exit 1; }
STATS_PID=
cleanup() {
	local rc=$?
	[[ -n $STATS_PID ]] && kill "$STATS_PID" 2>/dev/null && wait "$STATS_PID" 2>/dev/null
	lab_cleanup
	return $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "bench/xdp_stun: ${SECONDS_EACH}s each, window $WINDOW, one load generator over veth + bridge"

# --- 1: the program alone.
PROG=$("$progbench" 4) || { echo "bench/xdp_stun: xdp_prog_bench failed"; exit 1; }
prog() { awk -v k="$1" '$1 == k { print $2 }' <<<"$PROG"; }
printf '  %-34s %8s ns\n' "answer, repeat mode (one client)" "$(prog answer_repeat_ns)" \
	"answer, one per call (one client)" "$(prog answer_call_adj_ns)" \
	"answer, one per call (new client)" "$(prog answer_new_call_adj_ns)" \
	"keepalive absorbed, repeat mode" "$(prog keepalive_repeat_ns)" \
	"QUIC passed, repeat mode" "$(prog quic_repeat_ns)" \
	"other port passed, repeat mode" "$(prog unmanaged_repeat_ns)"
echo "  (one per call: the kernel's timing of single runs, less an empty program's overhead per call, $(prog empty_call_ns) - $(prog empty_repeat_ns) ns)"

# --- 2: the lab.
lab_internet && lab_server coturn 198.18.0.10 198.18.0.11 &&
	lab_server natagent 198.18.0.30 && lab_server load 198.18.0.50 &&
	lab_full_checksums load eth0 && lab_coturn coturn || exit 1
COTURN_PID=$LAB_LAST_PID
umask 077
cat > "$LAB_DIR/rdv.conf" <<CONF
[Interface]
PrivateKey = $("$top/natctl" genkey)
[Rendezvous]
Listen = 198.18.0.30:3478
CONF

# start_natagent ARGS...: sets NATAGENT_PID, NATAGENT_LOG.
RUN=0
start_natagent() {
	NATAGENT_LOG=$LAB_DIR/natagent.$((++RUN)).log
	lab_spawn natagent "$NATAGENT_LOG" "$top/natagent" "$@" -c "$LAB_DIR/rdv.conf"
	NATAGENT_PID=$LAB_LAST_PID
	wait_for 10 grep -q ': ready$' "$NATAGENT_LOG" || { echo "natagent did not start"; exit 1; }
}
stop_natagent() {
	kill -TERM "$NATAGENT_PID"
	wait_for 10 eval "! kill -0 $NATAGENT_PID 2>/dev/null"
	wait "$NATAGENT_PID" 2>/dev/null
	grep -o 'STUN service answered [0-9]* of [0-9]* requests' "$NATAGENT_LOG"
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# machine: "busy softirq" ticks over all CPUs.
machine() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $8 }' /proc/stat; }
us_per() {  # TICKS ANSWERS
	awk -v t="$1" -v a="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", a ? t / hz * 1e6 / a : 0 }'
}

# measure NAME PID SERVER: sets SENT_, RATE_, LOST_, OFFERED_, CPU_ (µs per
# answer, the responder process), SOFTIRQ_, BUSY_ (µs per answer, machine).
measure() {
	local name=$1 pid=$2 server=$3 before after m0 m1 out sent answered secs rate lost
	before=$(cpu_ticks "$pid")
	m0=$(machine)
	out=$(lab_exec load "$load" "$server:3478" "$SECONDS_EACH" "$WINDOW" "$MAX_REQUESTS")
	m1=$(machine)
	after=$(cpu_ticks "$pid")
	echo "  $name: $out"
	read -r _ sent _ answered _ secs _ rate _ lost <<<"$out"
	printf -v "RATE_$name" '%s' "$rate"
	printf -v "LOST_$name" '%s' "$lost"
	printf -v "SENT_$name" '%s' "$sent"
	printf -v "OFFERED_$name" '%s' "$(awk -v s="$sent" -v t="$secs" 'BEGIN { printf "%.0f", t ? s / t : 0 }')"
	printf -v "CPU_$name" '%s' "$(us_per $((after - before)) "$answered")"
	read -r b0 s0 <<<"$m0"
	read -r b1 s1 <<<"$m1"
	printf -v "SOFTIRQ_$name" '%s' "$(us_per $((s1 - s0)) "$answered")"
	printf -v "BUSY_$name" '%s' "$(us_per $((b1 - b0)) "$answered")"
}

measure coturn "$COTURN_PID" 198.18.0.10

start_natagent
grep -q 'BPF fast path on eth0' "$NATAGENT_LOG" || { echo "natagent did not attach XDP:"; cat "$NATAGENT_LOG"; exit 1; }
PROG_ID=$(lab_exec natagent ip -d link show dev eth0 | grep -o 'prog/xdp id [0-9]*' | awk '{ print $3 }')
[[ -n $PROG_ID ]] || { echo "no XDP program on natagent's eth0"; exit 1; }
"$progbench" stats "$PROG_ID" "$((SECONDS_EACH + 1))" > "$LAB_DIR/bpfstats" 2>&1 &
STATS_PID=$!
measure xdp "$NATAGENT_PID" 198.18.0.30
wait "$STATS_PID"
STATS_PID=
read -r _ XDP_RUNS _ XDP_RUN_NS < "$LAB_DIR/bpfstats" || { cat "$LAB_DIR/bpfstats"; exit 1; }
echo "  xdp: natagent's $(stop_natagent); XDP ran $XDP_RUNS times, $XDP_RUN_NS ns per run (kernel BPF stats)"

start_natagent -B
measure userspace "$NATAGENT_PID" 198.18.0.30
echo "  userspace: natagent -B's $(stop_natagent)"

XDP_NS=$(prog answer_repeat_ns)
echo
printf '%-24s %11s %11s %9s %14s %14s %14s\n' responder answers/s offered/s lost \
	"cpu µs/answer" "softirq µs/a" "machine µs/a"
printf '%-24s %11s %11s %9s %14s %14s %14s\n' \
	"XDP (natagent)" "$RATE_xdp" "$OFFERED_xdp" "$LOST_xdp" \
	"$(awk -v n="$XDP_NS" 'BEGIN { printf "%.3f", n / 1000 }')" "$SOFTIRQ_xdp" "$BUSY_xdp" \
	"natagent -B (userspace)" "$RATE_userspace" "$OFFERED_userspace" "$LOST_userspace" \
	"$CPU_userspace" "$SOFTIRQ_userspace" "$BUSY_userspace" \
	"coturn" "$RATE_coturn" "$OFFERED_coturn" "$LOST_coturn" "$CPU_coturn" "$SOFTIRQ_coturn" "$BUSY_coturn"
echo "  (XDP's cpu: the program's repeat-mode ns per answer; natagent's own process used" \
	"$CPU_xdp µs per answer meanwhile; under the load the attached program ran $XDP_RUN_NS ns" \
	"per packet; softirq and machine: all CPUs, whole path, generator included)"
echo
awk -v xn="$XDP_NS" -v xs="$XDP_RUN_NS" -v xc="$(prog answer_call_adj_ns)" -v cc="$CPU_coturn" \
	-v uc="$CPU_userspace" -v xr="$RATE_xdp" -v cr="$RATE_coturn" -v ur="$RATE_userspace" \
	-v xo="$OFFERED_xdp" -v xl="$LOST_xdp" -v xsent="$SENT_xdp" \
	-v xb="$BUSY_xdp" -v cb="$BUSY_coturn" 'BEGIN {
	r = cc ? xn / 1000 / cc : 0
	printf "ratio XDP/coturn cpu per answer: %.4f (1/%.0f) repeat mode; %.4f (1/%.0f) under load (BPF stats); %.4f (1/%.0f) one per call\n",
		r, r ? 1 / r : 0, cc ? xs / 1000 / cc : 0, xs ? cc * 1000 / xs : 0,
		cc ? xc / 1000 / cc : 0, xc ? cc * 1000 / xc : 0
	printf "ratio XDP/userspace natagent cpu per answer: %.4f (repeat mode)\n", uc ? xn / 1000 / uc : 0
	printf "ratio XDP answers/offered: %.4f (%d of %d lost)\n", xo ? xr / xo : 0, xl, xsent
	printf "ratio XDP/coturn answers/s: %.2f; XDP/userspace natagent: %.2f\n",
		cr ? xr / cr : 0, ur ? xr / ur : 0
	printf "ratio XDP/coturn machine time per answer (whole path): %.2f\n", cb ? xb / cb : 0
	ok = cc && xn / 1000 / cc <= 0.1 && xl == 0
	printf "targets (cost <= 1/10 of coturn, no loss): %s\n", ok ? "met" : "NOT met"
}'
