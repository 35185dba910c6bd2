#!/usr/bin/env bash
# Proxy mode under the real wireguard-go: two hosts on one link, static
# Endpoints. Each wireguard-go's peer endpoint is its local natagent's
# LocalEndpoint; WireGuard's packets cross natagent's QUIC tunnel.
#  - ping across the wg interfaces works;
#  - one natagent stops and starts again: WireGuard recovers by itself
#    (wireguard-go is not touched);
#  - a wrong pinned key gives no tunnel and a log line naming the keys.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/scripts/lab.sh"
. "$here/lib.sh"

[[ $(id -u) == 0 ]] || tap_skip_all "needs root"
for tool in wireguard-go wg; do
	command -v "$tool" >/dev/null || tap_skip_all "$tool not installed"
done
lab_traps

IP_A=198.18.0.41 IP_B=198.18.0.42
# wireguard-go's UAPI sockets share /var/run/wireguard across namespaces: the
# interface names must be unique to this run.
sfx=$RANDOM
WG_A=wgpa$sfx WG_B=wgpb$sfx
natctl=$top/natctl natagent=$top/natagent

keys() {  # NAME: NAME.key (natagent), NAME.wg (wireguard)
	"$natctl" genkey > "$LAB_DIR/$1.key"
	"$natctl" pubkey < "$LAB_DIR/$1.key" > "$LAB_DIR/$1.pub"
	wg genkey > "$LAB_DIR/$1.wg"
	wg pubkey < "$LAB_DIR/$1.wg" > "$LAB_DIR/$1.wgpub"
}

# agent_conf NAME PEER PEER_IP [PEER_KEY_OVERRIDE]
agent_conf() {
	local peerkey=${4:-$(cat "$LAB_DIR/$2.pub")}
	cat > "$LAB_DIR/$1.conf" <<-CONF
	[Interface]
	PrivateKey = $(cat "$LAB_DIR/$1.key")
	ListenPort = 40000
	Mode = proxy
	ForwardTo = 127.0.0.1:51820
	IdleTimeout = 10
	[Peer]
	PublicKey = $peerkey
	Endpoint = $3:40000
	LocalEndpoint = 127.0.0.1:51901
	CONF
}

start_agent() {  # NAME -> AGENT_PID_<NAME>
	lab_spawn "$1" "$LAB_DIR/$1.log" "$natagent" -d -c "$LAB_DIR/$1.conf"
	printf -v "AGENT_PID_$1" '%s' "$LAB_LAST_PID"
	wait_for 5 grep -q ready "$LAB_DIR/$1.log"
}

start_wg() {  # NAME IFACE ADDR PEER PEER_ADDR
	lab_spawn "$1" "$LAB_DIR/wg-$1.log" wireguard-go -f "$2"
	wait_for 5 lab_exec "$1" ip link show "$2" >/dev/null || return 1
	lab_exec "$1" wg set "$2" private-key "$LAB_DIR/$1.wg" listen-port 51820 \
		peer "$(cat "$LAB_DIR/$4.wgpub")" endpoint 127.0.0.1:51901 allowed-ips "$5/32" \
		persistent-keepalive 5 || return 1
	# WireGuard's packets must fit in natagent's datagrams: 1280 + 32
	# bytes of WireGuard fit once PMTUD has grown the path (README, proxy mode).
	lab_exec "$1" ip link set "$2" mtu 1280 &&
		lab_exec "$1" ip addr add "$3/24" dev "$2" && lab_exec "$1" ip link set "$2" up
}

setup() {
	lab_internet && lab_server a "$IP_A" && lab_server b "$IP_B" || return 1
	lab_exec a ip link set lo up; lab_exec b ip link set lo up
	umask 077
	keys a && keys b || return 1
	agent_conf a b "$IP_B" && agent_conf b a "$IP_A" || return 1
	start_agent a && start_agent b || return 1
	start_wg a "$WG_A" 10.99.0.1 b 10.99.0.2 && start_wg b "$WG_B" 10.99.0.2 a 10.99.0.1
}

if ! setup; then
	tap_fail "lab with two natagents and two wireguard-go" "$(tail -n 5 "$LAB_DIR"/*.log)"
	tap_done
fi
tap_ok "lab with two natagents and two wireguard-go"

tap_check "sessions come up between the agents" wait_for 10 grep -q "session up" "$LAB_DIR/a.log"
tap_check "ping across the WireGuard interfaces (through natagent)" \
	wait_for 15 lab_exec a ping -c1 -W1 10.99.0.2
tap_check "WireGuard's handshake ran over natagent" \
	sh -c "ip netns exec $(lab_ns a) wg show $WG_A latest-handshakes | awk '{ exit !(\$2 > 0) }'"
# What crosses the link must be natagent's QUIC (port 40000), never
# WireGuard's own packets (port 51820): count both on a's uplink.
lab_exec a nft -f - <<'NFT'
table inet wgcheck {
	chain out {
		type filter hook output priority 0;
		oifname "eth0" udp sport 51820 counter
		oifname "eth0" udp dport 51820 counter
		oifname "eth0" udp sport 40000 counter
	}
}
NFT
lab_exec a ping -c3 -i0.2 -W1 10.99.0.2 >/dev/null
counts=$(lab_exec a nft list table inet wgcheck | grep -oE 'packets [0-9]+' | awk '{ print $2 }' | tr '\n' ' ')
tap_diag "packets on a's uplink: from port 51820, to port 51820, from port 40000: $counts"
read -r wg_out wg_in quic_out <<<"$counts"
tap_check "only natagent's QUIC crosses the link, none of WireGuard's own packets" \
	test "${wg_out:-1}" = 0 -a "${wg_in:-1}" = 0 -a "${quic_out:-0}" -gt 0
lab_exec a nft delete table inet wgcheck

kill -TERM "$AGENT_PID_a"
wait_exit "$AGENT_PID_a"
tap_check "with one agent stopped, the WireGuard tunnel is down" \
	sh -c "! ip netns exec $(lab_ns a) ping -c1 -W1 10.99.0.2"
start_agent a
tap_check "agent restarted: WireGuard recovers by itself" wait_for 30 lab_exec a ping -c1 -W1 10.99.0.2
tap_check "the other agent saw a new session" sh -c "[ \$(grep -c 'session up' $LAB_DIR/b.log) -ge 2 ]"

# Migration: a TCP transfer through the tunnel while the agent that dialed
# moves its session to a new local port.
dialer=a
grep -q "we dialed" "$LAB_DIR/b.log" && dialer=b
dialer_pid=AGENT_PID_$dialer
lab_spawn b "$LAB_DIR/iperf3-server.log" iperf3 -s -B 10.99.0.2 -1
wait_for 5 lab_exec b ss -ltn sport = :5201 | grep -q 5201
lab_exec a timeout 30 iperf3 -c 10.99.0.2 -t 4 -J > "$LAB_DIR/iperf3.json" 2>&1 &
iperf_pid=$!
sleep 1.5
kill -USR1 "${!dialer_pid}"
wait "$iperf_pid"
iperf_rc=$?
tap_check "migration: the agent that dialed moves its session" \
	wait_for 5 grep -q "moving the session to local port" "$LAB_DIR/$dialer.log"
tap_check "migration: the new path is validated" \
	wait_for 5 grep -q "validated" "$LAB_DIR/$dialer.log"
received=$(sed -nE '/"sum_received"/,/}/ s/.*"bytes":[[:space:]]*([0-9]+).*/\1/p' "$LAB_DIR/iperf3.json" | head -n1)
tap_diag "iperf3 exit $iperf_rc, received ${received:-?} bytes across the migration"
tap_check "migration: the TCP transfer through the tunnel completes" \
	test "$iperf_rc" = 0 -a "${received:-0}" -gt 0

# A wrong pinned key: b expects a key a does not have.
kill -TERM "$AGENT_PID_a" "$AGENT_PID_b"
wait_exit "$AGENT_PID_a" && wait_exit "$AGENT_PID_b"
agent_conf b a "$IP_A" "$(cat "$LAB_DIR/b.pub")"   # b pins its own key for a: wrong
"$natctl" genkey | "$natctl" pubkey > "$LAB_DIR/wrong.pub"
agent_conf b a "$IP_A" "$(cat "$LAB_DIR/wrong.pub")"
: > "$LAB_DIR/a.log"; : > "$LAB_DIR/b.log"
start_agent a && start_agent b
tap_check "wrong pinned key: no tunnel" sh -c "! ip netns exec $(lab_ns a) ping -c3 -W1 10.99.0.2"
tap_check "wrong pinned key: a log line names the keys" \
	wait_for 10 sh -c "grep -hE 'presented key|not accepted|bad certificate' $LAB_DIR/a.log $LAB_DIR/b.log"
tap_diag "$(grep -hE 'presented key|not accepted|bad certificate|session ended' "$LAB_DIR/a.log" "$LAB_DIR/b.log" | head -4)"
tap_done
