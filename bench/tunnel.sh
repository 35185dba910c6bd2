#!/usr/bin/env bash
# bench/tunnel: TCP throughput (iperf3) and ping RTT between two hosts on one
# lab path, in one run, through:
#   (a) the plain path (veth + bridge): the ceiling
#   (b) wireguard-go with static endpoints: the peer we measure against
#   (c) natagent in tun mode
#   (d) wireguard-go in proxy mode over natagent
# printed as ratios to (b), with the CPU seconds per GB the tunnel processes
# of both hosts spent in (b) and (c).
#
#   BENCH_SECONDS=5 bench/tunnel.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
. "$top/scripts/lab.sh"
T=${BENCH_SECONDS:-5}
natctl=$top/natctl natagent=$top/natagent

if [[ $(id -u) != 0 ]]; then echo "bench/tunnel: needs root (namespaces)"; exit 0; fi
for tool in iperf3 wireguard-go wg; do
	command -v $tool >/dev/null || { echo "bench/tunnel: $tool missing (make deps)"; exit 1; }
done
lab_traps

IP_A=198.18.0.61 IP_B=198.18.0.62
sfx=$RANDOM
lab_internet && lab_server a "$IP_A" && lab_server b "$IP_B" || exit 1
lab_exec a ip link set lo up; lab_exec b ip link set lo up
umask 077
for n in a b; do
	"$natctl" genkey > "$LAB_DIR/$n.key"; "$natctl" pubkey < "$LAB_DIR/$n.key" > "$LAB_DIR/$n.pub"
	wg genkey > "$LAB_DIR/$n.wg"; wg pubkey < "$LAB_DIR/$n.wg" > "$LAB_DIR/$n.wgpub"
done

cpu_ticks() {  # PIDS...: user+system ticks of all of them
	local t=0 p
	for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done
	echo $t
}

# run NAME DEST PIDS...: iperf3 from a to DEST and ping; sets BPS_, RTT_, CPU_ (s/GB).
run() {
	local name=$1 dest=$2; shift 2
	local before after bytes rtt out
	lab_spawn b "$LAB_DIR/iperf3-$name.log" iperf3 -s -B "$dest" -1
	wait_for 5 sh -c "ip netns exec $(lab_ns b) ss -ltn | grep -q '$dest:5201'"
	lab_exec a ping -c3 -W1 "$dest" >/dev/null   # warm up: sessions, PMTUD
	before=$(cpu_ticks "$@")
	out=$(lab_exec a timeout $((T + 20)) iperf3 -c "$dest" -t "$T" -J)
	after=$(cpu_ticks "$@")
	bytes=$(sed -nE '/"sum_received"/,/}/ s/.*"bytes":[[:space:]]*([0-9]+).*/\1/p' <<<"$out" | head -n1)
	rtt=$(lab_exec a ping -c20 -i0.05 -q "$dest" | sed -nE 's|.*= [0-9.]+/([0-9.]+)/.*|\1|p')
	printf -v "BPS_$name" '%s' "$(awk -v b="${bytes:-0}" -v t="$T" 'BEGIN { printf "%.0f", b * 8 / t }')"
	printf -v "RTT_$name" '%s' "${rtt:-0}"
	printf -v "CPU_$name" '%s' "$(awk -v d=$((after - before)) -v hz="$(getconf CLK_TCK)" -v b="${bytes:-0}" \
		'BEGIN { printf "%.2f", b ? d / hz / (b / 1e9) : 0 }')"
}

# (a) the plain path
run plain "$IP_B" $$

# (b) wireguard-go, static endpoints
wg_up() {  # NS IFACE ADDR PEER PEERADDR ENDPOINT
	lab_spawn "$1" "$LAB_DIR/wg-$2.log" wireguard-go -f "$2"
	printf -v "WGPID_$1" '%s' "$LAB_LAST_PID"
	wait_for 5 lab_exec "$1" ip link show "$2" >/dev/null
	lab_exec "$1" wg set "$2" private-key "$LAB_DIR/$1.wg" listen-port 51820 \
		peer "$(cat "$LAB_DIR/$4.wgpub")" endpoint "$6" allowed-ips "$5/32"
	lab_exec "$1" ip link set "$2" mtu "${WG_MTU:-1420}"
	lab_exec "$1" ip addr add "$3/24" dev "$2"; lab_exec "$1" ip link set "$2" up
}
wg_down() { lab_exec a ip link del "wga$sfx" 2>/dev/null; lab_exec b ip link del "wgb$sfx" 2>/dev/null
	kill "$WGPID_a" "$WGPID_b" 2>/dev/null; wait_for 5 sh -c "! kill -0 $WGPID_a 2>/dev/null"; }
wg_up a "wga$sfx" 10.98.0.1 b 10.98.0.2 "$IP_B:51820"
wg_up b "wgb$sfx" 10.98.0.2 a 10.98.0.1 "$IP_A:51820"
run wg 10.98.0.2 "$WGPID_a" "$WGPID_b"
wg_down

# (c) natagent tun mode
agent_conf() {  # NAME MODE PEER PEERIP [extra interface lines] -- peer lines
	{
		echo "[Interface]"; echo "PrivateKey = $(cat "$LAB_DIR/$1.key")"; echo "ListenPort = 40000"
		echo "Mode = $2"; echo "$5"
		echo "[Peer]"; echo "PublicKey = $(cat "$LAB_DIR/$3.pub")"; echo "Endpoint = $4:40000"; echo "$6"
	} > "$LAB_DIR/$1/$7.conf"
}
mkdir -p "$LAB_DIR/a" "$LAB_DIR/b"
agent_conf a tun b "$IP_B" "Address = 10.97.0.1/24
MTU = 1380" "AllowedIPs = 10.97.0.2/32" nt0
agent_conf b tun a "$IP_A" "Address = 10.97.0.2/24
MTU = 1380" "AllowedIPs = 10.97.0.1/32" nt0
lab_spawn a "$LAB_DIR/na-a.log" "$natagent" -c "$LAB_DIR/a/nt0.conf"; NA_A=$LAB_LAST_PID
lab_spawn b "$LAB_DIR/na-b.log" "$natagent" -c "$LAB_DIR/b/nt0.conf"; NA_B=$LAB_LAST_PID
wait_for 10 lab_exec a ping -c1 -W1 10.97.0.2 >/dev/null || echo "natagent tun did not come up"
run tun 10.97.0.2 "$NA_A" "$NA_B"
kill "$NA_A" "$NA_B"; wait_for 5 sh -c "! kill -0 $NA_A 2>/dev/null && ! kill -0 $NA_B 2>/dev/null"

# (d) wireguard-go in proxy mode over natagent
agent_conf a proxy b "$IP_B" "ForwardTo = 127.0.0.1:51820" "LocalEndpoint = 127.0.0.1:51901" px0
agent_conf b proxy a "$IP_A" "ForwardTo = 127.0.0.1:51820" "LocalEndpoint = 127.0.0.1:51901" px0
lab_spawn a "$LAB_DIR/px-a.log" "$natagent" -c "$LAB_DIR/a/px0.conf"; PX_A=$LAB_LAST_PID
lab_spawn b "$LAB_DIR/px-b.log" "$natagent" -c "$LAB_DIR/b/px0.conf"; PX_B=$LAB_LAST_PID
WG_MTU=1280 wg_up a "wga$sfx" 10.98.0.1 b 10.98.0.2 127.0.0.1:51901
WG_MTU=1280 wg_up b "wgb$sfx" 10.98.0.2 a 10.98.0.1 127.0.0.1:51901
wait_for 15 lab_exec a ping -c1 -W1 10.98.0.2 >/dev/null || echo "wireguard over natagent did not come up"
run wgproxy 10.98.0.2 "$WGPID_a" "$WGPID_b" "$PX_A" "$PX_B"
wg_down

mbps() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo "bench/tunnel: iperf3 TCP ${T}s a->b over veth + bridge, one run"
printf '%-34s %10s %8s %10s %12s\n' path Mbit/s "x wg" "RTT ms" "CPU s/GB"
printf '%-34s %10s %8s %10s %12s\n' "(a) plain path" "$(mbps "$BPS_plain")" "$(ratio "$BPS_plain" "$BPS_wg")" "$RTT_plain" "-"
printf '%-34s %10s %8s %10s %12s\n' "(b) wireguard-go" "$(mbps "$BPS_wg")" "1.00" "$RTT_wg" "$CPU_wg"
printf '%-34s %10s %8s %10s %12s\n' "(c) natagent tun" "$(mbps "$BPS_tun")" "$(ratio "$BPS_tun" "$BPS_wg")" "$RTT_tun" "$CPU_tun"
printf '%-34s %10s %8s %10s %12s\n' "(d) wireguard-go over natagent" "$(mbps "$BPS_wgproxy")" "$(ratio "$BPS_wgproxy" "$BPS_wg")" "$RTT_wgproxy" "$CPU_wgproxy"
echo "ratio (c)/(b) throughput: $(ratio "$BPS_tun" "$BPS_wg")  (target >= 1.5)"
echo "ratio (c)/(b) CPU per GB: $(ratio "$CPU_tun" "$CPU_wg")"
