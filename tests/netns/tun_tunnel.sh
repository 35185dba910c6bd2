#!/usr/bin/env bash
# Tun mode: natagent is the VPN. Two hosts on one link, static Endpoints.
#  - the TUN device comes up with its address, MTU and a route per AllowedIPs;
#  - ping and a TCP transfer (iperf3) cross the tunnel;
#  - with MTU 1420, above what a datagram carries (~1411 bytes), a full-size
#    DF packet gets an ICMP "fragmentation needed" back, and TCP adapts to it
#    (no silent black hole);
#  - a packet whose source is outside the sending peer's AllowedIPs is
#    dropped by the receiver (anti-spoofing);
#  - one side restarts: the tunnel comes back by itself;
#  - on exit the device and its routes are gone.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/scripts/lab.sh"
. "$here/lib.sh"

[[ $(id -u) == 0 ]] || tap_skip_all "needs root"
command -v iperf3 >/dev/null || tap_skip_all "iperf3 not installed"
lab_traps

IP_A=198.18.0.51 IP_B=198.18.0.52
natctl=$top/natctl natagent=$top/natagent

conf() {  # NAME ADDR PEER PEER_IP PEER_ADDR
	cat > "$LAB_DIR/$1/nt0.conf" <<-CONF
	[Interface]
	PrivateKey = $(cat "$LAB_DIR/$1.key")
	ListenPort = 40000
	Address = $2/24
	MTU = 1420
	IdleTimeout = 10
	[Peer]
	PublicKey = $(cat "$LAB_DIR/$3.pub")
	AllowedIPs = $5/32
	Endpoint = $4:40000
	CONF
}

start() {  # NAME
	: > "$LAB_DIR/$1.log"
	lab_spawn "$1" "$LAB_DIR/$1.log" "$natagent" -d -c "$LAB_DIR/$1/nt0.conf"
	printf -v "PID_$1" '%s' "$LAB_LAST_PID"
	wait_for 5 grep -q ready "$LAB_DIR/$1.log"
}

setup() {
	lab_internet && lab_server a "$IP_A" && lab_server b "$IP_B" || return 1
	umask 077
	mkdir -p "$LAB_DIR/a" "$LAB_DIR/b"
	for n in a b; do
		"$natctl" genkey > "$LAB_DIR/$n.key"
		"$natctl" pubkey < "$LAB_DIR/$n.key" > "$LAB_DIR/$n.pub"
	done
	conf a 10.77.0.1 b "$IP_B" 10.77.0.2 && conf b 10.77.0.2 a "$IP_A" 10.77.0.1 || return 1
	start a && start b
}

if ! setup; then
	tap_fail "two natagents in tun mode" "$(tail -n 5 "$LAB_DIR"/*.log)"
	tap_done
fi
tap_ok "two natagents in tun mode"

tap_check "TUN device nt0 up with its address" \
	sh -c "ip netns exec $(lab_ns a) ip -o addr show dev nt0 | grep -q '10.77.0.1/24'"
tap_is "TUN MTU as configured" "$(lab_exec a cat /sys/class/net/nt0/mtu)" 1420
tap_check "ping through the tunnel" wait_for 15 lab_exec a ping -c1 -W1 10.77.0.2

out=$(lab_exec a ping -c1 -W2 -M do -s 1392 10.77.0.2 2>&1)
tap_diag "$(head -n 3 <<<"$out")"
tap_check "1420-byte DF packet: ICMP frag-needed comes back from the tunnel" \
	grep -qE "Frag needed and DF set \(mtu = 1[0-9]{3}\)" <<<"$out"

tap_check "the kernel learnt the tunnel's size from that answer" \
	sh -c "ip netns exec $(lab_ns a) ip route get 10.77.0.2 | grep -qE 'mtu 1[0-9]{3}'"

lab_spawn b "$LAB_DIR/iperf3-server.log" iperf3 -s -B 10.77.0.2 -1
wait_for 5 sh -c "ip netns exec $(lab_ns b) ss -ltn | grep -q ':5201'"
lab_exec a timeout 30 iperf3 -c 10.77.0.2 -t 3 -J > "$LAB_DIR/iperf3.json" 2>&1
rc=$?
received=$(sed -nE '/"sum_received"/,/}/ s/.*"bytes":[[:space:]]*([0-9]+).*/\1/p' "$LAB_DIR/iperf3.json" | head -n1)
tap_diag "iperf3 exit $rc, received ${received:-?} bytes"
tap_check "TCP transfer (iperf3) through the tunnel, segments sized by that answer" test "$rc" = 0 -a "${received:-0}" -gt 1000000

# b sends from an address a does not route to b: a must drop it.
lab_exec b ip addr add 10.77.0.99/32 dev nt0
tap_check "spoofed source (outside b's AllowedIPs) is dropped by a" \
	sh -c "! ip netns exec $(lab_ns b) ping -c2 -W1 -I 10.77.0.99 10.77.0.1"
tap_check "the same ping from b's own address passes" lab_exec b ping -c1 -W1 10.77.0.1

t0=$(date +%s%N)
kill -TERM "$PID_b"
tap_check "b exits on SIGTERM" wait_exit "$PID_b"
tap_diag "b took $(( ($(date +%s%N) - t0) / 1000000 )) ms to exit"
tap_check "on exit the TUN device is removed" \
	sh -c "! ip netns exec $(lab_ns b) ip link show nt0 2>/dev/null"
tap_check "on exit its routes are removed" \
	sh -c "! ip netns exec $(lab_ns b) ip route | grep -q 10.77.0"
start b
tap_check "b restarted: the tunnel comes back by itself" wait_for 30 lab_exec a ping -c1 -W1 10.77.0.2
tap_check "a noticed b's restart" wait_for 10 \
	sh -c "grep -qE 'stateless reset|session ended' $LAB_DIR/a.log"

# b pins a key that is not a's: no tunnel, and the logs say why.
kill -TERM "$PID_b"
wait_exit "$PID_b"
"$natctl" genkey | "$natctl" pubkey > "$LAB_DIR/a.pub"
conf b 10.77.0.2 a "$IP_A" 10.77.0.1
start b
tap_check "wrong pinned key: no tunnel" sh -c "! ip netns exec $(lab_ns a) ping -c3 -W1 10.77.0.2"
tap_check "wrong pinned key: the log names the key and the reason" \
	wait_for 10 sh -c "grep -hE 'presented key .* expected|is not accepted|bad certificate' $LAB_DIR/a.log $LAB_DIR/b.log"
tap_diag "$(grep -hE 'presented key|not accepted|bad certificate' "$LAB_DIR/a.log" "$LAB_DIR/b.log" | sort -u | head -3)"

kill -TERM "$PID_a"
wait_for 5 grep -q "dropped:" "$LAB_DIR/a.log"
tap_diag "$(grep "dropped:" "$LAB_DIR/a.log")"
tap_check "on exit a reports the spoofed packets it dropped" \
	grep -qE "dropped: .* [1-9][0-9]* spoofed" "$LAB_DIR/a.log"
tap_done
