#!/usr/bin/env bash
# natagent's BPF fast path in the lab (agent/fastpath.c): a server running
# natagent as a rendezvous (and as an agent on ListenPort), a client behind
# an endpoint-independent NAT.
#
#  1. Listen + AlternateListen: natagent attaches XDP to the uplink and says
#     so; the RFC 5780 service keeps its ports in userspace (XDP's answers
#     lack OTHER-ADDRESS), so netcheck still gets its verdict; XDP answers
#     plain Binding requests on the agent's port.
#  2. Listen only: the real `stun` client, an RFC 8489 probe and
#     `natctl netcheck` are answered by XDP: its TX counter grows while the
#     server's UDP stack (and natagent's own counters) see none of them;
#     bpftool and `natctl bpf` show the client in nat_cache.
#  3. A stop for a restart (SIGUSR2) keeps the cache; the next run reuses it.
#  4. A plain stop (SIGTERM) leaves no XDP program, no tc filter, no pins.
#  5. `natagent -B`, and natagent without CAP_BPF: nothing attached, one
#     message, STUN still answered from userspace.
#  6. An agent on the client host finds its uplink by the route to its
#     peer's Endpoint.
#
# Pins go to a bpffs this test mounts under /tmp (NATAGENT_BPF_PIN_ROOT):
# every `ip netns exec` gets a private /sys, so natagent's, natctl's and
# bpftool's /sys/fs/bpf would be three different places (DESIGN.md).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/scripts/lab.sh"
. "$here/lib.sh"

PY=/usr/bin/python3   # the system's python, not a PATH shim
[[ $(id -u) == 0 ]] || tap_skip_all "needs root"
for tool in stun bpftool ip tc setpriv mountpoint $PY; do
	command -v "$tool" >/dev/null || tap_skip_all "$tool not installed"
done
[[ -x $top/natagent && -x $top/natctl ]] || tap_skip_all "build first (make all)"

RDV1=198.18.0.30 RDV2=198.18.0.31
PORT=3478 ALT_PORT=3479 AGENT_PORT=51820
PIN=$(mktemp -d /tmp/natagent-bpf.XXXXXX)
PINS=$PIN/natagent/eth0
AGENT_PID= AGENT_LOG= RUNS=0

cleanup() {
	local rc=$?
	lab_cleanup
	mountpoint -q "$PIN" && umount "$PIN"
	rmdir "$PIN" 2>/dev/null
	return $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

write_conf() {  # FILE [ALTERNATE]: the server: agent on AGENT_PORT + rendezvous
	umask 077
	cat > "$1" <<-CONF
	[Interface]
	PrivateKey = $KEY
	ListenPort = $AGENT_PORT
	Mode = proxy
	ForwardTo = 127.0.0.1:51999
	[Rendezvous]
	Listen = $RDV1:$PORT
	CONF
	[[ -z ${2:-} ]] || echo "AlternateListen = $RDV2:$ALT_PORT" >> "$1"
}

# start NS CONF [WRAPPER...] -- [NATAGENT ARGS...]: natagent in NS (rdv: the
# server), with the test's pin root; waits for "ready". Not through
# tap_check: AGENT_PID must outlive a subshell.
start() {
	local ns=$1 conf=$2 wrap=()
	shift 2
	while (($#)) && [[ $1 != -- ]]; do wrap+=("$1"); shift; done
	shift
	AGENT_LOG=$LAB_DIR/natagent.$((++RUNS)).log
	lab_spawn "$ns" "$AGENT_LOG" "${wrap[@]}" env NATAGENT_BPF_PIN_ROOT="$PIN" \
		"$top/natagent" -d "$@" -c "$conf"
	AGENT_PID=$LAB_LAST_PID
	wait_for 10 grep -q ': ready$' "$AGENT_LOG"
}

# stop SIGNAL: stops natagent, waits (bounded) and reaps it; STOP_RC is its
# exit status. The PID leaves lab_cleanup's list: it may be reused.
stop() {
	local pid=$AGENT_PID p keep=()
	STOP_RC=
	[[ -n $pid ]] || return 1
	kill "-$1" "$pid" 2>/dev/null
	wait_for 10 eval "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	STOP_RC=$?
	for p in "${LAB_PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
	LAB_PIDS=("${keep[@]}")
	AGENT_PID=
}

in_rdv() { lab_exec rdv "$@"; }
natctl_bpf() { in_rdv env NATAGENT_BPF_PIN_ROOT="$PIN" "$top/natctl" bpf "$@"; }
has_xdp() { in_rdv ip link show dev eth0 | grep -q 'xdp'; }
no_xdp() { ! has_xdp; }
no_tc() { [[ -z $(in_rdv tc filter show dev eth0 egress) ]] && ! in_rdv tc qdisc show dev eth0 | grep -q clsact; }
no_pins() { [[ ! -e $PIN/natagent ]]; }
udp_in() { in_rdv awk '/^Udp:/ { if (h) { print $2; exit } h = 1 }' /proc/net/snmp; }

# xdp_tx REASON: packets XDP answered with that reason, from natctl bpf --json.
xdp_tx() {
	natctl_bpf eth0 --json | $PY -c '
import json, sys
n = sum(s["packets"] for i in json.load(sys.stdin)["interfaces"] for s in i["stats"]
        if s["action"] == "tx" and s["reason"] == sys.argv[1])
print(n)' "$1"
}

# cache_has PORT: bpftool, reading the pins, finds the client's public
# address at that port in nat_cache, on the STUN port, with traffic both ways.
cache_has() {
	bpftool -j map dump pinned "$PINS/nat_cache" | $PY -c '
import json, sys
want = [int(x) for x in sys.argv[1].split(".")]
for e in json.load(sys.stdin):
    k, v = e["formatted"]["key"], e["formatted"]["value"]
    if k["addr"][:4] == want and k["remote_port"] == int(sys.argv[2]) and \
            k["local_port"] == int(sys.argv[3]) and v["rx_packets"] and v["tx_packets"]:
        sys.exit(0)
sys.exit(1)' "$WAN" "$1" "$PORT"
}

stun_classic() {  # SRCPORT: the real client, test 1 (one Binding request)
	local out
	out=$(lab_exec a timeout 10 stun "$RDV1" 1 -v -p "$1" 2>&1)
	grep -q "MappedAddress = $WAN:$1" <<<"$out" && grep -q 'ok=1' <<<"$out"
}
probe() { lab_exec a $PY "$here/stun_probe.py" "$@"; }
# punch_check PORT SRCPORT: a Binding request with USERNAME, as an ICE check
# starts (its MESSAGE-INTEGRITY does not matter to XDP, which passes it on).
punch_check() {
	lab_exec a $PY - "$RDV1" "$1" "$2" <<-'PYEOF'
	import os, socket, struct, sys
	user = b"abcd:efgh"
	attr = struct.pack("!HH", 0x0006, len(user)) + user + bytes(-len(user) % 4)
	msg = struct.pack("!HHI12s", 1, len(attr), 0x2112A442, os.urandom(12)) + attr
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	s.bind(("", int(sys.argv[3])))
	s.sendto(msg, (sys.argv[1], int(sys.argv[2])))
	PYEOF
}
netcheck() { NC=$(lab_exec a timeout 60 "$top/natctl" netcheck --json "$@" 2>&1); }
json_str() { sed -nE "s/^ *\"$1\": \"?([^\",]*)\"?,?$/\1/p" <<<"$NC" | head -n1; }
service_line() { grep -o 'STUN service answered [0-9]* of [0-9]* requests' "$AGENT_LOG"; }

build_lab() {
	lab_internet && lab_server rdv "$RDV1" "$RDV2" && lab_site a eim &&
		lab_full_checksums a eth0 && mount -t bpf bpf "$PIN" || return 1
	KEY=$("$top/natctl" genkey) && WAN=$(lab_wan_ip a) || return 1
	write_conf "$LAB_DIR/rfc5780.conf" alternate && write_conf "$LAB_DIR/plain.conf"
}

if ! build_lab; then
	tap_fail "lab builds (server, client behind an eim NAT, bpffs)" "$(lab_dump 2>&1 | tail -n 20)"
	tap_done
fi
tap_ok "lab builds (server, client behind an eim NAT, bpffs)"

# --- 1: an RFC 5780 rendezvous (Listen + AlternateListen) and an agent port.
start rdv "$LAB_DIR/rfc5780.conf" --
tap_check "natagent starts with BPF" grep -q ': ready$' "$AGENT_LOG"
tap_diag "$(grep -E 'BPF|userspace' "$AGENT_LOG")"
tap_check "it names the uplink, why, and the XDP mode and why" \
	grep -q "BPF fast path on eth0 (holds \[Rendezvous\] Listen $RDV1:$PORT): XDP in generic mode (veth: " "$AGENT_LOG"
tap_check "XDP is attached to eth0 (ip link show)" has_xdp
tap_check "the RFC 5780 service's ports stay in userspace, and it says why" \
	grep -q "STUN on ports $PORT and $ALT_PORT stays in userspace: .*OTHER-ADDRESS" "$AGENT_LOG"
tap_check "natctl bpf: the agent's port is the one managed" \
	eval "natctl_bpf eth0 | grep -qx '  managed ports: $AGENT_PORT (agent)'"
netcheck "$RDV1:$PORT"
tap_diag "$(tr -d '\n' <<<"$NC" | tr -s ' ')"
tap_is "netcheck still sees an RFC 5780 server and classifies the NAT" \
	"$(json_str rfc5780) $(json_str mapping) / $(json_str filtering)" \
	"true endpoint-independent / endpoint-independent"
tap_is "XDP answers a plain Binding request on the agent's port" \
	"$(probe bind "$RDV1" "$AGENT_PORT" 40100 2>&1)" "mapped $WAN 40100"
tap_check "counted as an XDP_TX answer" eval '(( $(xdp_tx stun_answered) >= 1 ))'
stop TERM
tap_is "natagent stops cleanly" "$STOP_RC" 0

# --- 2: a plain STUN service (Listen only): XDP answers it.
start rdv "$LAB_DIR/plain.conf" --
tap_diag "$(grep BPF "$AGENT_LOG")"
tap_check "natagent attaches XDP and manages the STUN and agent ports" \
	grep -q "BPF fast path on eth0 (holds \[Rendezvous\] Listen $RDV1:$PORT): XDP in generic mode (.*), ports $PORT (rendezvous), $AGENT_PORT (agent); maps pinned in $PINS$" "$AGENT_LOG"
udp_before=$(udp_in)
tx_before=$(( $(xdp_tx stun_answered) + $(xdp_tx stun_answered_3489) ))
tap_check "stun client (RFC 3489) answered" stun_classic 40001
tap_is "RFC 8489 request answered, FINGERPRINT valid" \
	"$(probe bind "$RDV1" "$PORT" 40002 2>&1)" "mapped $WAN 40002"
netcheck "$RDV1:$PORT"
tap_diag "$(tr -d '\n' <<<"$NC" | tr -s ' ')"
tap_is "natctl netcheck answered: finds the public address" \
	"$(sed -nE 's/.*"public": "([0-9.]+):[0-9]+".*/\1/p' <<<"$NC" | head -n1)" "$WAN"
tx_after=$(( $(xdp_tx stun_answered) + $(xdp_tx stun_answered_3489) ))
tap_diag "XDP_TX answers: $tx_before before, $tx_after after"
tap_check "XDP_TX counter grew by every answer (at least 4)" eval "(( tx_after - tx_before >= 4 ))"
tap_is "the server's UDP stack received none of them (Udp InDatagrams)" "$(udp_in)" "$udp_before"
tap_check "bpftool map dump pinned .../nat_cache shows the client" cache_has 40001
NB=$(natctl_bpf 2>&1)
tap_diag "$(head -n 16 <<<"$NB")"
tap_check "natctl bpf shows the client in the cache" \
	eval "grep -A1 -x 'remote: $WAN:40001' <<<\"\$NB\" | grep -qx '  local port: $PORT'"
tap_check "natctl bpf shows XDP and the stats by reason" eval \
	"grep -q '^  xdp: generic mode, program natpath_xdp' <<<\"\$NB\" &&
	 grep -qE '^  ipv4 +stun +tx +stun_answered_3489 +[1-9]' <<<\"\$NB\""
tap_check "natctl bpf --json is JSON with the client" eval \
	"natctl_bpf --json | $PY -c 'import json, sys; d = json.load(sys.stdin)
sys.exit(not any(e[\"remote\"] == \"$WAN:40001\" for i in d[\"interfaces\"] for e in i[\"nat_cache\"]))'"

tap_check "a new remote endpoint is logged as an event (debug)" \
	grep -q "eth0: new remote endpoint $WAN:40001 on port $PORT (rendezvous)" "$AGENT_LOG"
punch_check "$AGENT_PORT" 40010
tap_check "a punch check goes to the socket and is logged as an event" \
	wait_for 5 grep -q "eth0: punch check from $WAN:40010 on port $AGENT_PORT (agent), transaction [0-9a-f]\{24\}$" "$AGENT_LOG"

# --- 3: a stop for a restart keeps the cache.
stop USR2
tap_is "SIGUSR2: natagent stops for a restart" "$STOP_RC" 0
tap_check "and says the maps stay pinned" grep -q "maps stay pinned in $PINS for the next run" "$AGENT_LOG"
tap_check "the pins are still there" test -e "$PINS/nat_cache"
tap_check "XDP and tc are detached meanwhile" eval 'no_xdp && no_tc'
tap_check "natctl bpf still reads the cache, XDP shown as not attached" eval \
	"natctl_bpf eth0 | grep -q '^  xdp: not attached' && natctl_bpf eth0 | grep -qx 'remote: $WAN:40001'"
start rdv "$LAB_DIR/plain.conf" --
tap_check "the restarted natagent reuses the pinned maps" \
	grep -qE "maps pinned in $PINS, reused with [1-9][0-9]* cached endpoints?$" "$AGENT_LOG"
tap_check "the cache kept the client from before the restart" cache_has 40001
tap_check "stun client answered after the restart" stun_classic 40003

# --- 4: a plain stop leaves nothing behind.
stop TERM
tap_is "SIGTERM: natagent exits 0" "$STOP_RC" 0
tap_diag "$(service_line)"
tap_is "natagent's userspace STUN service saw none of the plain requests" \
	"$(service_line)" "STUN service answered 0 of 0 requests"
tap_check "it says it detached and unpinned" grep -q "BPF fast path off eth0: detached and unpinned" "$AGENT_LOG"
tap_check "no XDP program on eth0 (ip link show)" no_xdp
tap_check "no tc filter or clsact qdisc on eth0" no_tc
tap_check "no pins" no_pins
NB=$(natctl_bpf 2>&1)
tap_check "natctl bpf then says nothing is pinned" \
	grep -q "no natagent BPF maps under $PIN/natagent: is natagent running with BPF?" <<<"$NB"

# --- 5: without BPF.
start rdv "$LAB_DIR/plain.conf" -- -B
tap_check "natagent -B says the fast path is off" grep -q 'BPF fast path off (-B)' "$AGENT_LOG"
tap_check "and attaches nothing" eval 'no_xdp && no_tc && no_pins'
tap_check "stun client answered from userspace" stun_classic 40004
stop TERM
tap_is "natagent's userspace STUN service answered it" "$(service_line)" \
	"STUN service answered 1 of 1 requests"

start rdv "$LAB_DIR/plain.conf" setpriv --bounding-set=-bpf,-sys_admin,-perfmon,-net_admin --
tap_diag "$(grep -i 'bpf' "$AGENT_LOG")"
tap_is "without CAP_BPF: one warning, and natagent runs" \
	"$(grep -c 'warning: .*no BPF fast path on eth0: .*goes on without it' "$AGENT_LOG") $(grep -c ': ready$' "$AGENT_LOG")" "1 1"
tap_check "nothing attached or pinned" eval 'no_xdp && no_tc && no_pins'
tap_check "stun client answered from userspace" stun_classic 40005
stop TERM
tap_is "natagent stops cleanly" "$STOP_RC" 0

# --- 6: the uplink of an agent that talks to a peer.
umask 077
cat > "$LAB_DIR/client.conf" <<-CONF
[Interface]
PrivateKey = $("$top/natctl" genkey)
ListenPort = $AGENT_PORT
Mode = proxy
ForwardTo = 127.0.0.1:51999
[Peer]
PublicKey = $("$top/natctl" pubkey <<<"$KEY")
Endpoint = $RDV1:$AGENT_PORT
LocalEndpoint = 127.0.0.1:51901
CONF
start a "$LAB_DIR/client.conf" --
tap_diag "$(grep 'BPF' "$AGENT_LOG")"
tap_check "an agent takes the interface of the route to its peer's Endpoint" \
	grep -q "BPF fast path on eth0 (route to peer Endpoint $RDV1:$AGENT_PORT): XDP in generic mode (.*), ports $AGENT_PORT (agent);" "$AGENT_LOG"
stop TERM
tap_check "and leaves nothing behind" eval \
	"! lab_exec a ip link show dev eth0 | grep -q xdp && no_pins"

tap_done
