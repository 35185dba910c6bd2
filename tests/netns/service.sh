#!/usr/bin/env bash
# natagent as a systemd service (issue 9):
#  - systemd/natagent@.service passes `systemd-analyze verify` (ExecStart
#    pointed at this build) without a word, and the check does catch a bad
#    key; its capabilities are limited to CAP_NET_ADMIN and CAP_BPF; it
#    reloads with SIGHUP;
#  - the readiness protocol, against a listener on $NOTIFY_SOCKET: READY=1
#    arrives, and by then `natctl show` answers; STATUS= says how many peers
#    are direct, relayed or down; STOPPING=1 on SIGTERM.
# natagent runs in a lab namespace (its one peer's Endpoint is a lab
# address nobody answers on: the peer stays down).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/scripts/lab.sh"
. "$here/lib.sh"

tap_needs python3
lab_traps

UNIT=$top/systemd/natagent@.service
lab_internet || tap_bail "cannot build the lab"

# --- the unit file
if command -v systemd-analyze >/dev/null; then
	sed "s|/usr/local/sbin/natagent|$natagent|" "$UNIT" > "$LAB_DIR/natagent@nt0.service"
	out=$(cd "$LAB_DIR" && systemd-analyze verify natagent@nt0.service 2>&1)
	rc=$?
	tap_diag "$out"
	tap_check "systemd-analyze verify passes the unit, with nothing to say" \
		test "$rc" = 0 -a -z "$out"
	sed 's/^NoNewPrivileges=/NoNewPrivilege=/' "$LAB_DIR/natagent@nt0.service" \
		> "$LAB_DIR/broken@nt0.service"
	tap_check "... and the same check flags a misspelt key" \
		sh -c "cd '$LAB_DIR' && systemd-analyze verify broken@nt0.service 2>&1 | grep -q NoNewPrivilege"
else
	tap_skip "systemd-analyze verify" "systemd-analyze not installed (make deps)"
fi
tap_check "the unit keeps only CAP_NET_ADMIN and CAP_BPF" \
	grep -qx 'CapabilityBoundingSet=CAP_NET_ADMIN CAP_BPF' "$UNIT"
tap_check "the unit reloads with SIGHUP (natagent applies the file's peers)" \
	grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$UNIT"
tap_check "the unit is Type=notify and reads /etc/natagent/%i.conf" \
	eval 'grep -qx "Type=notify" "$UNIT" && grep -q "^ExecStart=.* -c /etc/natagent/%i.conf$" "$UNIT"'

# --- sd_notify
lab_server host 198.18.0.20 || tap_bail "cannot add the host"
(umask 077 && "$natctl" genkey > "$LAB_DIR/a.key" && "$natctl" genkey | "$natctl" pubkey > "$LAB_DIR/b.pub")
mkdir -p "$LAB_DIR/cfg" "$LAB_DIR/run"
cat > "$LAB_DIR/cfg/nt0.conf" <<CONF
[Interface]
PrivateKey = $(cat "$LAB_DIR/a.key")
ListenPort = 51820
Mode = proxy
ForwardTo = 127.0.0.1:51999
[Peer]
PublicKey = $(cat "$LAB_DIR/b.pub")
Endpoint = 198.18.0.99:51820
LocalEndpoint = 127.0.0.1:51901
CONF
chmod 600 "$LAB_DIR/cfg/nt0.conf"

sock=$LAB_DIR/notify.sock
lab_spawn host "$LAB_DIR/notify.log" python3 -u -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); s.settimeout(30)
print("listening", flush=True)
while True:
    try:
        m = s.recv(4096).decode()
    except socket.timeout:
        break
    for line in m.split("\n"):
        print("%.3f %s" % (time.time(), line), flush=True)
    if "STOPPING=1" in m:
        break
' "$sock"
wait_for 5 grep -q listening "$LAB_DIR/notify.log" || tap_bail "no notify listener"
lab_spawn host "$LAB_DIR/agent.log" env NOTIFY_SOCKET="$sock" NATAGENT_RUN_DIR="$LAB_DIR/run" \
	"$natagent" -B -c "$LAB_DIR/cfg/nt0.conf"
agent=$LAB_LAST_PID
tap_check "READY=1 arrives" wait_for 10 grep -q ' READY=1$' "$LAB_DIR/notify.log"
tap_check "... and natctl show answers by then" \
	lab_exec host env NATAGENT_RUN_DIR="$LAB_DIR/run" "$natctl" show nt0
tap_check "STATUS= counts the peers: 1 peer: 0 direct, 0 relayed, 1 down" \
	wait_for 10 grep -q ' STATUS=1 peer: 0 direct, 0 relayed, 1 down$' "$LAB_DIR/notify.log"
kill -TERM "$agent"
tap_check "STOPPING=1 on SIGTERM" wait_for 10 grep -q ' STOPPING=1$' "$LAB_DIR/notify.log"
wait_for 10 sh -c "! kill -0 $agent 2>/dev/null"
tap_diag "$(cat "$LAB_DIR/notify.log")"
tap_done
