#!/usr/bin/env bash
# bench/stun: STUN answers per second of natagent's userspace STUN service
# against coturn's, offered the same load over the same namespace path in one
# run, with each responder's CPU time per answer. Printed as ratios: these
# machines are shared, so only figures from one run compare.
#
#   BENCH_SECONDS=5 BENCH_WINDOW=256 bench/stun.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
B=${B:-build}
. "$top/scripts/lab.sh"
SECONDS_EACH=${BENCH_SECONDS:-5}
WINDOW=${BENCH_WINDOW:-256}
load="$top/$B/bench/stunload"

if [[ $(id -u) != 0 ]]; then echo "bench/stun: needs root (namespaces)"; exit 0; fi
[[ -x $load ]] || { echo "bench/stun: $load not built (make bench)"; exit 1; }
lab_traps

lab_internet && lab_server coturn 198.18.0.10 198.18.0.11 &&
	lab_server natagent 198.18.0.30 198.18.0.31 && lab_server load 198.18.0.50 &&
	lab_coturn coturn || exit 1
COTURN_PID=$LAB_LAST_PID
umask 077
cat > "$LAB_DIR/rdv.conf" <<CONF
[Interface]
PrivateKey = $("$top/natctl" genkey)
[Rendezvous]
Listen = 198.18.0.30:3478
AlternateListen = 198.18.0.31:3479
CONF
lab_spawn natagent "$LAB_DIR/natagent.log" "$top/natagent" -c "$LAB_DIR/rdv.conf"
NATAGENT_PID=$LAB_LAST_PID
wait_for 10 grep -q ready "$LAB_DIR/natagent.log" || { echo "natagent did not start"; exit 1; }

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# measure NAME PID SERVER: sets RATE_<NAME>, LOST_<NAME>, CPU_<NAME> (µs/answer).
measure() {
	local name=$1 pid=$2 server=$3 before after out answered
	before=$(cpu_ticks "$pid")
	out=$(lab_exec load "$load" "$server:3478" "$SECONDS_EACH" "$WINDOW")
	after=$(cpu_ticks "$pid")
	echo "  $name: $out"
	read -r _ _ _ answered _ _ _ rate _ lost <<<"$out"
	printf -v "RATE_$name" '%s' "$rate"
	printf -v "LOST_$name" '%s' "$lost"
	printf -v "CPU_$name" '%s' "$(awk -v t=$((after - before)) -v a="$answered" -v hz="$(getconf CLK_TCK)" \
		'BEGIN { printf "%.3f", a ? t / hz * 1e6 / a : 0 }')"
}

echo "bench/stun: ${SECONDS_EACH}s each, window $WINDOW, one load generator over veth + bridge"
measure coturn "$COTURN_PID" 198.18.0.10
measure natagent "$NATAGENT_PID" 198.18.0.30
printf '%-22s %12s %10s %14s\n' responder answers/s lost "cpu µs/answer"
printf '%-22s %12s %10s %14s\n' "coturn" "$RATE_coturn" "$LOST_coturn" "$CPU_coturn"
printf '%-22s %12s %10s %14s\n' "natagent (userspace)" "$RATE_natagent" "$LOST_natagent" "$CPU_natagent"
awk -v a="$RATE_natagent" -v b="$RATE_coturn" -v ca="$CPU_natagent" -v cb="$CPU_coturn" 'BEGIN {
	printf "ratio natagent/coturn: answers/s %.2f, cpu per answer %.2f\n", b ? a / b : 0, cb ? ca / cb : 0 }'
