#!/usr/bin/env bash
# Reload (issue 9): `natctl syncconf` and SIGHUP apply peer changes to a
# running natagent without touching the peers that did not change. The lab:
# a rendezvous on the internet, hosts a, b and c behind port-restricted
# NATs, every peer reached through the rendezvous (no Endpoint). a starts
# with only b; b and c list a. A TCP transfer a -> b runs across all of it:
#  - syncconf adds c: a reaches c through the tunnel (REGISTER sent again,
#    so the relay and punching work for c);
#  - c's AllowedIPs grow by a prefix outside a's /24: the route appears and
#    carries a ping; natctl prints "AllowedIPs changed";
#  - syncconf removes c: c's session is closed ("peer removed" in c's log),
#    c is unreachable, its route is gone, a's log says removed, and the
#    rendezvous refuses c's packets to a again (UNREGISTER);
#  - the same add and remove through SIGHUP and a's own file;
#  - a broken file: natctl syncconf prints file:line and exits non-zero, a
#    SIGHUP on it only logs the errors; nothing changes either way;
#  - a ListenPort change is refused, naming the key, and nothing of that
#    file is applied (not its new peer either);
#  - the transfer arrives whole, and b's session is the one it started on:
#    one "session up" in each log, its age grew by the time that passed;
#  - proxy mode (two hosts on the internet, static Endpoints): a changed
#    LocalEndpoint moves to a new socket, the old one closed; a peer whose
#    key is replaced by another with the same LocalEndpoint gets that very
#    socket (no "address in use"), and datagrams cross again.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/scripts/lab.sh"
. "$top/scripts/agentlab.sh"
. "$here/lib.sh"

tap_needs python3
lab_traps

RDV=198.18.0.10 RDV2=198.18.0.11
declare -A ADDR=([a]=10.77.0.1 [b]=10.77.0.2 [c]=10.77.0.3)
XFER_BYTES=20000000 XFER_SECONDS=30

lab_internet && lab_server rdv "$RDV" "$RDV2" && lab_site a port && lab_site b port &&
	lab_site c port || tap_bail "cannot build the lab"
rdv_start -d || tap_bail "no rendezvous: $(tail -n 5 "$LAB_DIR/rdv.log")"
D=$LAB_DIR/p
mkdir -p "$D"
keys "$D" a b c || tap_bail "no keys"

# conf FILE ROLE PORT ADDRESSES [PEER=ALLOWED...]: a tun-mode config for ROLE
# registered at the rendezvous, its peers reached through it.
conf() {
	local f=$1 role=$2 port=$3 addrs=$4 p
	shift 4
	mkdir -p "$(dirname "$f")"
	{
		printf '[Interface]\nPrivateKey = %s\nListenPort = %s\nAddress = %s\n' \
			"$(cat "$D/$role.key")" "$port" "$addrs"
		printf 'Rendezvous = %s:3478\nRendezvousKey = %s\n' "$RDV" "$(cat "$LAB_DIR/rdv.pub")"
		for p in "$@"; do
			printf '\n[Peer]\nPublicKey = %s\nAllowedIPs = %s\n' "$(cat "$D/${p%%=*}.pub")" "${p#*=}"
		done
	} > "$f"
	chmod 600 "$f"
}
A_ONLY_B=(a 41000 10.77.0.1/24 "b=10.77.0.2/32")
conf "$D/a/nt0.conf" "${A_ONLY_B[@]}"
conf "$D/b/nt0.conf" b 41000 10.77.0.2/24 "a=10.77.0.1/32"
conf "$D/c/nt0.conf" c 41000 "10.77.0.3/24, 10.88.0.1/32" "a=10.77.0.1/32"
conf "$D/a-c.conf" "${A_ONLY_B[@]}" "c=10.77.0.3/32"
conf "$D/a-c88.conf" "${A_ONLY_B[@]}" "c=10.77.0.3/32, 10.88.0.0/24"
conf "$D/a-b.conf" "${A_ONLY_B[@]}"
cp "$D/a/nt0.conf" "$D/a-orig.conf"

for h in a b c; do start "$D" "$h" "$h" || tap_bail "$h did not start: $(tail -n 5 "$D/$h.log")"; done
tap_ok "a rendezvous and three agents behind port-restricted NATs; a lists only b"

sync() {  # FILE: natctl syncconf nt0 FILE against a; OUT and RC
	OUT=$(NATAGENT_RUN_DIR=$D/run-a "$natctl" syncconf nt0 "$1" 2>&1); RC=$?
	tap_diag "natctl syncconf nt0 ${1##*/} (exit $RC):"$'\n'"$OUT"
}
a_json() { NATAGENT_RUN_DIR=$D/run-a "$natctl" show nt0 --json; }
# jget EXPR: a Python expression over the show --json object j of a.
jget() { a_json | python3 -c "import json, sys; j = json.load(sys.stdin); print($1)"; }
peer_field() {  # ROLE FIELD: that field of a's peer ROLE, or "none" without the peer
	jget "next((str(p.get('$2')) for p in j['peers'] if p['public_key'] == '$(cat "$D/$1.pub")'), 'none')"
}
n_peers() { jget "len(j['peers'])"; }
ping_ok() { lab_exec a ping -c1 -W1 "$1" >/dev/null 2>&1; }
route_of() { lab_exec a ip route show "$1" dev nt0 2>/dev/null; }
KB=$(cut -c1-8 "$D/b.pub") KC=$(cat "$D/c.pub")
ups() { grep -c "peer $KB: session up" "$D/$1.log"; }
rdv_refused() {
	NATAGENT_RUN_DIR=$LAB_DIR/run-rdv "$natctl" show rdv0 --json 2>/dev/null | python3 -c \
		'import json, sys; print(json.load(sys.stdin)["rendezvous_service"]["dropped_not_allowed"])'
}

tap_check "a reaches b through the tunnel" wait_for 20 ping_ok "${ADDR[b]}"
# The session may still move from the relay to a punched path: let it
# settle, so that what follows sees only what a reload does.
wait_for 15 sh -c "NATAGENT_RUN_DIR=$D/run-a $natctl show nt0 | grep -q '^  endpoint: '"
sleep 1
age0=$(peer_field b session_age_ms) t0=$EPOCHREALTIME ups_a0=$(ups a) ups_b0=$(ups b)
tap_diag "b's session: up $age0 ms, path $(peer_field b path)"
xfer_start a b "${ADDR[b]}" "$XFER_BYTES" "$XFER_SECONDS" 20 "$LAB_DIR/xfer" ||
	tap_fail "the transfer a -> b starts" "$(cat "$LAB_DIR/xfer-sink.log")"

# --- natctl syncconf: add, change, remove
sync "$D/a-b.conf"
tap_check "syncconf of the running file: exit 0, 'nt0: no changes'" \
	eval '[[ $RC == 0 && $OUT == "nt0: no changes" ]]'
sync "$D/a-c.conf"
tap_check "syncconf adding c: exit 0, 'peer <c> added'" \
	eval '[[ $RC == 0 && $OUT == "peer $KC added" ]]'
tap_check "... a's log says the same" grep -q "nt0: syncconf: peer $KC added" "$D/a.log"
tap_check "... a reaches c through the tunnel" wait_for 20 ping_ok "${ADDR[c]}"
tap_diag "c's path: $(peer_field c path)"

sync "$D/a-c88.conf"
tap_check "syncconf growing c's AllowedIPs: 'AllowedIPs changed (added 10.88.0.0/24)'" \
	eval '[[ $RC == 0 && $OUT == "peer $KC: AllowedIPs changed (added 10.88.0.0/24)" ]]'
tap_check "... the route 10.88.0.0/24 dev nt0 is there" test -n "$(route_of 10.88.0.0/24)"
tap_check "... and carries a ping to c's 10.88.0.1" wait_for 5 ping_ok 10.88.0.1
tap_is "... natctl show lists both prefixes" "$(peer_field c allowed_ips)" \
	"['10.77.0.3/32', '10.88.0.0/24']"

sync "$D/a-b.conf"
refused0=$(rdv_refused)
tap_check "syncconf removing c: exit 0, 'peer <c> removed'" \
	eval '[[ $RC == 0 && $OUT == "peer $KC removed" ]]'
tap_check "... a's log says removed" grep -q "nt0: syncconf: peer $KC removed" "$D/a.log"
tap_check "... c's session was closed cleanly (c's log: peer removed)" \
	wait_for 5 grep -q "session ended: peer closed.*peer removed" "$D/c.log"
tap_check "... c is unreachable" sh -c "! ip netns exec $(lab_ns a) ping -c2 -W1 ${ADDR[c]}"
tap_check "... its route is gone" test -z "$(route_of 10.88.0.0/24)"
tap_check "... natctl show: b only" test "$(n_peers)" = 1 -a "$(peer_field c path)" = none
tap_check "... and the rendezvous refuses c's packets to a again (UNREGISTER)" \
	wait_for 10 eval '(( $(rdv_refused) > refused0 ))'

# --- SIGHUP: a's own file
cp "$D/a-c88.conf" "$D/a/nt0.conf"
kill -HUP "$PID_a"
tap_check "SIGHUP with c in a's file: the log says added" \
	wait_for 5 grep -q "nt0: SIGHUP: peer $KC added" "$D/a.log"
tap_check "... a reaches c, also at 10.88.0.1" \
	eval 'wait_for 20 ping_ok "${ADDR[c]}" && wait_for 5 ping_ok 10.88.0.1'
cp "$D/a-b.conf" "$D/a/nt0.conf"
kill -HUP "$PID_a"
tap_check "SIGHUP without c: the log says removed" \
	wait_for 5 grep -q "nt0: SIGHUP: peer $KC removed" "$D/a.log"
tap_check "... c is unreachable and its route gone" \
	eval '! ping_ok "${ADDR[c]}" && [[ -z $(route_of 10.88.0.0/24) ]]'

# --- a broken file changes nothing
sed 's|^AllowedIPs = 10.77.0.3/32$|AllowedIPs = 10.77.0.300/32|' "$D/a-c.conf" > "$D/bad.conf"
chmod 600 "$D/bad.conf"
line=$(grep -n '10.77.0.300' "$D/bad.conf" | cut -d: -f1)
before=$(a_json | python3 -c 'import json, sys; print(sorted(p["public_key"] for p in json.load(sys.stdin)["peers"]))')
sync "$D/bad.conf"
tap_check "syncconf of a broken file exits non-zero" test "$RC" != 0
tap_check "... printing file:line and what was wrong" \
	grep -qF "$D/bad.conf:$line: AllowedIPs: '10.77.0.300/32' is not an IP prefix" <<<"$OUT"
cp "$D/bad.conf" "$D/a/nt0.conf"
kill -HUP "$PID_a"
tap_check "SIGHUP on a broken file: the errors logged, nothing applied" \
	wait_for 5 eval 'grep -q "SIGHUP: .*nt0.conf:$line: AllowedIPs" "$D/a.log" &&
		grep -q "SIGHUP: .*has errors; nothing applied, running as before" "$D/a.log"'
after=$(a_json | python3 -c 'import json, sys; print(sorted(p["public_key"] for p in json.load(sys.stdin)["peers"]))')
tap_check "... natagent runs on with the same peers" \
	eval 'kill -0 "$PID_a" && [[ $before == "$after" ]]'
cp "$D/a-b.conf" "$D/a/nt0.conf"

# --- an [Interface] change is refused, and nothing of the file applied
sed 's/^ListenPort = 41000$/ListenPort = 41001/' "$D/a-c.conf" > "$D/port.conf"
chmod 600 "$D/port.conf"
sync "$D/port.conf"
tap_check "syncconf changing ListenPort exits non-zero, naming the key" \
	eval '[[ $RC != 0 ]] && grep -q "ListenPort changed: restart natagent to apply it" <<<"$OUT"'
tap_check "... says nothing was applied, and c was not added" \
	eval 'grep -q "nothing applied" <<<"$OUT" && [[ $(n_peers) == 1 ]]'

# --- b, the peer no reload touched
running=0
kill -0 "$XFER_SEND" 2>/dev/null && running=1
tap_check "the transfer a -> b was still running after all of that" test "$running" = 1
age1=$(peer_field b session_age_ms) t1=$EPOCHREALTIME
xfer_wait "$LAB_DIR/xfer"; rc=$?
tap_diag "$(cat "$LAB_DIR/xfer-send.log")"
tap_check "... and arrived whole" test "$rc" = 0
gap=$(ms_since "$t0" "$t1")
tap_diag "b's session age: $age0 ms, then $age1 ms, $gap ms apart"
tap_check "b kept its session: its age grew by the time that passed" \
	test $((age1 - age0)) -ge $((gap - 1500))
tap_check "... no new session for b in a's log or b's" \
	test "$(ups a)" = "$ups_a0" -a "$(ups b)" = "$ups_b0"
tap_check "... and none ended" sh -c "! grep -q 'peer $KB: session ended' '$D/a.log' '$D/b.log'"

# --- proxy mode: LocalEndpoint sockets
lab_server p 198.18.0.21 && lab_server q 198.18.0.22 || tap_bail "cannot add the proxy hosts"
keys "$D" p q q2 || tap_bail "no keys"
pconf() {  # FILE ROLE FORWARD_PORT PEER PEER_IP LOCAL_PORT
	mkdir -p "$(dirname "$1")"
	printf '[Interface]\nPrivateKey = %s\nListenPort = 42000\nMode = proxy\nForwardTo = 127.0.0.1:%s\n\n[Peer]\nPublicKey = %s\nEndpoint = %s:42000\nLocalEndpoint = 127.0.0.1:%s\n' \
		"$(cat "$D/$2.key")" "$3" "$(cat "$D/$4.pub")" "$5" "$6" > "$1"
	chmod 600 "$1"
}
pconf "$D/p/nt0.conf" p 51998 q 198.18.0.22 51901
pconf "$D/q/nt0.conf" q 51999 p 198.18.0.21 51901
pconf "$D/p-52.conf" p 51998 q 198.18.0.22 51902
pconf "$D/p-q2.conf" p 51998 q2 198.18.0.22 51902
# What q's agent delivers to its ForwardTo, one payload a line.
lab_spawn q "$LAB_DIR/fwd.log" python3 -u -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 51999)); s.settimeout(120)
print("listening")
while True:
    print(s.recv(2048).decode())'
wait_for 5 grep -q listening "$LAB_DIR/fwd.log" || tap_bail "no listener on q"
start "$D" p p && start "$D" q q || tap_bail "the proxy agents did not start"
crosses() {  # WORD PORT: WORD sent to p's LocalEndpoint PORT reaches q's ForwardTo
	lab_exec p bash -c "echo $1 > /dev/udp/127.0.0.1/$2" 2>/dev/null
	grep -qx "$1" "$LAB_DIR/fwd.log"
}
tap_check "proxy mode: a datagram to p's LocalEndpoint 51901 reaches q's ForwardTo" \
	wait_for 15 crosses one 51901
KQ=$(cat "$D/q.pub") KQ2=$(cat "$D/q2.pub")
psync() {
	OUT=$(NATAGENT_RUN_DIR=$D/run-p "$natctl" syncconf nt0 "$1" 2>&1); RC=$?
	tap_diag "natctl syncconf nt0 ${1##*/} on p (exit $RC):"$'\n'"$OUT"
}
psync "$D/p-52.conf"
tap_check "syncconf moving q's LocalEndpoint: 'LocalEndpoint changed (127.0.0.1:51901 -> 127.0.0.1:51902)'" \
	eval '[[ $RC == 0 && $OUT == "peer $KQ: LocalEndpoint changed (127.0.0.1:51901 -> 127.0.0.1:51902)" ]]'
tap_check "... 51902 is bound, 51901 no longer" \
	eval 'lab_udp_bound p 127.0.0.1 51902 && ! lab_udp_bound p 127.0.0.1 51901'
tap_check "... and datagrams to 51902 cross, on the same session" \
	eval 'wait_for 5 crosses two 51902 && [[ $(grep -c "session up" "$D/p.log") == 1 ]]'
stop "$PID_q"
pconf "$D/q/nt0.conf" q2 51999 p 198.18.0.21 51902
start "$D" q q || tap_bail "q did not start again with its new key"
psync "$D/p-q2.conf"
tap_is "syncconf replacing q's key, same LocalEndpoint: exit 0, removed then added" \
	"$RC: $OUT" "0: peer $KQ removed"$'\n'"peer $KQ2 added"
tap_check "... the socket handed over (still bound, no bind error)" lab_udp_bound p 127.0.0.1 51902
tap_check "... and datagrams to it reach the new peer" wait_for 15 crosses three 51902
tap_done
