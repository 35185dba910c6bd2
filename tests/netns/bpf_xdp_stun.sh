#!/usr/bin/env bash
# natpath on a veth pair between two namespaces of our own: XDP answers the
# real `stun` client (Debian's stun-client, RFC 3489) and an RFC 8489 probe
# over IPv4 and IPv6 while no socket listens on the port, absorbs keepalives
# with a known token, and fills nat_cache, which bpftool reads from the pins.
# Then the loader's life cycle: a restart keeps the cache, a crashed run's
# program is found and replaced, a clean stop leaves nothing behind.
#
# The attach driver is tests/netns/xdp_attach.c, built here against the
# project's libraries (make all first):
#   cc -std=gnu11 -O2 -g -Wall -Wextra -D_GNU_SOURCE -I. -Ibuild \
#      -o $TMP/xdp_attach tests/netns/xdp_attach.c build/libagent.a build/libnat.a -lbpf
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/netns/lib.sh

B=${B:-build}
PY=/usr/bin/python3   # the system's python, not a PATH shim
[[ $(id -u) == 0 ]] || tap_skip_all "needs root"
for tool in stun bpftool ip tc ss "${CC:-cc}" $PY; do
	command -v "$tool" >/dev/null || tap_skip_all "$tool not installed"
done
[[ -f $B/libagent.a && -f $B/natpath.skel.h ]] || tap_skip_all "build first (make all)"

SUF=$$-$RANDOM
NS_S=natpath-s-$SUF NS_C=natpath-c-$SUF
TMP=$(mktemp -d /tmp/natpath-netns.XXXXXX)
PIN=$TMP/bpf                  # a bpffs every `ip netns exec` sees (see DESIGN.md)
PINS=$PIN/natagent/vS
PORT=3478 TOKEN=0123456789abcdef
S4=10.77.1.1 C4=10.77.1.2 S6=fd77::1 C6=fd77::2
TOOL=$TMP/xdp_attach
PID=

cleanup() {
	[[ -n $PID ]] && kill -9 "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	ip netns del "$NS_S" 2>/dev/null   # takes the veths, XDP and qdiscs with it
	ip netns del "$NS_C" 2>/dev/null
	mountpoint -q "$PIN" && umount "$PIN"
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

in_s() { ip netns exec "$NS_S" "$@"; }
in_c() { ip netns exec "$NS_C" "$@"; }

# wait_for SECONDS CMD...: polls CMD every 0.1 s.
wait_for() {
	local n=$(($1 * 10))
	shift
	while ((n-- > 0)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# start NAME MODE [PIN_ROOT]: runs the driver in the server namespace,
# logging to $LOG, and checks that it attached. Not through tap_check: that
# runs its command in a subshell, and PID and LOG must outlive it.
start() {
	LOG=$TMP/attach.$((++RUNS)).log
	# Not through in_s: a backgrounded function is a subshell, whose PID
	# would take our signals instead of the driver.
	ip netns exec "$NS_S" "$TOOL" vS "${3:-$PIN}" "$PORT" "$2" "$TOKEN" >"$LOG" 2>&1 &
	PID=$!
	if wait_for 10 grep -q '^attached' "$LOG"; then
		tap_ok "$1"
		tap_diag "$(grep '^attached' "$LOG")"
	else
		tap_fail "$1" "$(tail -n 15 "$LOG")"
	fi
}

# stop SIGNAL: stops the driver and waits for it.
stop() {
	kill "-$1" "$PID"
	wait "$PID" 2>/dev/null
	PID=
}

xdp_progs() { in_s ip -d link show dev vS | grep -c 'prog/xdp'; }
no_xdp() { ! in_s ip link show dev vS | grep -q 'xdp'; }
no_pins() { [[ ! -e $PIN/natagent ]]; }
no_socket() { [[ -z $(in_s ss -Hlun "sport = :$PORT") ]]; }

# cache_has SRCPORT [FLAGS]: nat_cache (read through the pins) holds the
# client at that port, with those flag bits set.
cache_has() {
	bpftool -j map dump pinned "$PINS/nat_cache" | $PY -c '
import json, sys
port, flags = int(sys.argv[1]), int(sys.argv[2])
for e in json.load(sys.stdin):
    k, v = e["formatted"]["key"], e["formatted"]["value"]
    if k["remote_port"] == port and k["local_port"] == 3478 and v["flags"] & flags == flags \
            and v["rx_packets"] > 0:
        sys.exit(0)
sys.exit(1)' "$1" "${2:-0}"
}

stun_classic() {  # SRCPORT: the real client, test 1 (one Binding request)
	local out
	out=$(in_c timeout 10 stun "$S4" 1 -v -p "$1" 2>&1)
	grep -q "MappedAddress = $C4:$1" <<<"$out" && grep -q 'ok=1' <<<"$out"
}
probe() { in_c $PY tests/netns/stun_probe.py "$@"; }

setup() {
	ip netns add "$NS_S" && ip netns add "$NS_C" &&
		ip -n "$NS_S" link add vS type veth peer name vC netns "$NS_C" &&
		ip -n "$NS_S" addr add "$S4/24" dev vS && ip -n "$NS_C" addr add "$C4/24" dev vC &&
		ip -n "$NS_S" addr add "$S6/64" dev vS nodad &&
		ip -n "$NS_C" addr add "$C6/64" dev vC nodad &&
		ip -n "$NS_S" link set vS up && ip -n "$NS_C" link set vC up &&
		mkdir "$PIN" && mount -t bpf bpf "$PIN" &&
		in_c "$TOOL" peer-setup vC
}

RUNS=0
tap_check "build xdp_attach" "${CC:-cc}" -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE \
	-I. -I"$B" -o "$TOOL" tests/netns/xdp_attach.c "$B/libagent.a" "$B/libnat.a" \
	$(pkg-config --libs libbpf)
((TAP_RC == 0)) || tap_done
tap_check "namespaces, veth pair, pin root" setup
((TAP_RC == 0)) || tap_done

# --- 1: first run, AUTO mode: generic on a veth (see agent/bpf.c).
start "first run attaches" auto
tap_check "AUTO picks generic mode on a veth and says why" \
	grep -q 'mode=generic stale=0 reused=0 .*note=veth' "$LOG"
tap_check "no socket listens on $PORT" no_socket
tap_check "stun client (RFC 3489) answered by XDP" stun_classic 40001
tap_is "RFC 8489 request over IPv4 answered, FINGERPRINT valid" \
	"$(probe bind "$S4" "$PORT" 40002 2>&1)" "mapped $C4 40002"
tap_is "RFC 8489 request over IPv6 answered, FINGERPRINT valid" \
	"$(probe bind "$S6" "$PORT" 40003 2>&1)" "mapped $C6 40003"
tap_is "keepalive with a known token absorbed" \
	"$(probe keepalive "$S4" "$PORT" 40004 "$TOKEN" 2>&1)" "silent"
tap_is "keepalive with an unknown token passed to the stack" \
	"$(probe keepalive "$S4" "$PORT" 40005 feedfacecafebeef 2>&1)" "refused"
tap_check "bpftool shows the stun client in nat_cache" cache_has 40001
tap_check "nat_cache marks the keepalive's path confirmed" cache_has 40004 2
tap_check "nat_cache skips the unknown token" eval '! cache_has 40005'
tap_check "events reached the agent" grep -q "event new_remote $C4:40001" "$LOG"
stop USR1
tap_check "restart stop keeps the pins" test -e "$PINS/nat_cache"
tap_check "restart stop detaches XDP" no_xdp
tap_check "and removes the clsact it created" eval "! in_s tc qdisc show dev vS | grep -q clsact"
tap_diag "$(grep '^stat' "$LOG")"
tap_check "answers were counted as XDP_TX" grep -q '^stat ipv4 stun tx stun_answered_3489 1' "$LOG"
tap_check "keepalive counted as XDP_DROP" grep -q '^stat ipv4 stun drop keepalive 1' "$LOG"

# --- 2: restart in native mode (the peer runs an XDP program: peer-setup).
start "restart attaches natively" native
tap_check "restart reuses the pinned maps" grep -q 'mode=native stale=0 reused=1' "$LOG"
tap_check "the cache survived the restart" cache_has 40001
tap_check "stun client answered in native mode" stun_classic 40006
kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=
tap_is "a crashed run leaves its program attached" "$(xdp_progs)" 1

# --- 3: the next run replaces the stale program instead of adding one.
start "run after a crash attaches" auto
tap_check "it found and replaced the stale program" grep -q 'mode=generic stale=1 reused=1' "$LOG"
tap_is "exactly one XDP program on the interface" "$(xdp_progs)" 1
tap_check "stun client answered after the takeover" stun_classic 40007
stop TERM
tap_check "clean stop detaches XDP (ip link show)" no_xdp
tap_check "clean stop detaches the tc filter" \
	eval "[[ -z \$(in_s tc filter show dev vS egress) ]]"
tap_check "clean stop leaves no pins" no_pins
tap_check "the driver said closed" grep -qx closed "$LOG"

# --- 4: the default pin root inside `ip netns exec`: its /sys has no bpffs.
host_mounts=$(grep -c ' /sys/fs/bpf ' /proc/mounts)
start "default pin root: the loader mounts its own bpffs" generic -
tap_check "pins under /sys/fs/bpf" grep -q 'pins=/sys/fs/bpf/natagent/vS' "$LOG"
tap_check "stun client answered" stun_classic 40008
stop TERM
tap_check "that bpffs stayed inside the namespace" \
	eval "[[ \$(grep -c ' /sys/fs/bpf ' /proc/mounts) == $host_mounts ]]"
tap_check "and detaches on stop" no_xdp

tap_done
