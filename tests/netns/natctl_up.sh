#!/usr/bin/env bash
# natctl up / down (issue 9), with two hosts on the lab's internet that
# reach each other's static Endpoint:
#  - `natctl up` with a broken config prints natagent's error (file, line,
#    what was expected) and exits non-zero, starting nothing;
#  - `natctl up` on both hosts starts natagent, prints its progress and
#    returns once the peer is connected, directly; a ping crosses the tunnel;
#  - a second `natctl up` of the same interface is refused;
#  - `natctl showconf` prints the running configuration, private key
#    included, as a file natagent reads back to the same normalised form;
#  - `natctl down` stops natagent: the process, its TUN device and its
#    control socket are gone.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/scripts/lab.sh"
. "$here/lib.sh"

tap_needs
[[ $(dirname "$natagent") == "$(dirname "$natctl")" ]] ||
	tap_skip_all "natctl up runs the natagent next to it: keep NATAGENT and NATCTL together"

# natctl up leaves natagent running on its own: the cleanup ends those we
# started (their PIDs from natctl's output) before the lab goes.
PIDS=()
cleanup() {
	local rc=$? p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait_for 5 sh -c "! kill -0 $p 2>/dev/null" || kill -KILL "$p" 2>/dev/null; done
	lab_cleanup
	return $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

declare -A IP=([a]=198.18.0.21 [b]=198.18.0.22) TUN=([a]=10.77.0.1 [b]=10.77.0.2) OTHER=([a]=b [b]=a)
lab_internet && lab_server a "${IP[a]}" && lab_server b "${IP[b]}" || tap_bail "cannot build the lab"
umask 077
for h in a b; do
	"$natctl" genkey > "$LAB_DIR/$h.key" && "$natctl" pubkey < "$LAB_DIR/$h.key" > "$LAB_DIR/$h.pub"
done
for h in a b; do
	o=${OTHER[$h]}
	mkdir -p "$LAB_DIR/$h"
	cat > "$LAB_DIR/$h/nt0.conf" <<-CONF
	[Interface]
	PrivateKey = $(cat "$LAB_DIR/$h.key")
	ListenPort = 51820
	Address = ${TUN[$h]}/24
	[Peer]
	PublicKey = $(cat "$LAB_DIR/$o.pub")
	AllowedIPs = ${TUN[$o]}/32
	Endpoint = ${IP[$o]}:51820
	CONF
done
ctl() {  # HOST ARGS...: natctl in HOST's namespace, with HOST's run directory
	local h=$1; shift
	lab_exec "$h" env NATAGENT_RUN_DIR="$LAB_DIR/run-$h" "$natctl" "$@"
}

# A broken config: nothing starts, natagent's own error is shown.
sed 's/^ListenPort = 51820/ListenPort = banana/' "$LAB_DIR/a/nt0.conf" > "$LAB_DIR/a/bad.conf"
res=$(ctl a up "$LAB_DIR/a/bad.conf" 2>&1); code=$?
tap_diag "$res"
tap_check "natctl up with a broken config exits non-zero" test "$code" -ne 0
tap_check "... naming the file, the line and what was wrong" \
	grep -qE "bad.conf:3: ListenPort: .banana. is not a number" <<<"$res"
tap_check "... and starts nothing" sh -c "! ls '$LAB_DIR/run-a'/*.sock 2>/dev/null | grep -q ."

# Both up, at once: each returns when its peer is connected.
for h in a b; do
	lab_spawn "$h" "$LAB_DIR/up-$h.log" env NATAGENT_RUN_DIR="$LAB_DIR/run-$h" \
		"$natctl" up --timeout 20 "$LAB_DIR/$h/nt0.conf"
	eval "UP_$h=$LAB_LAST_PID"
done
for h in a b; do
	pid_var=UP_$h
	wait_for 25 sh -c "! kill -0 ${!pid_var} 2>/dev/null"
	wait "${!pid_var}" 2>/dev/null; eval "RC_$h=$?"
	p=$(sed -nE 's/.*natagent started \(pid ([0-9]+).*/\1/p' "$LAB_DIR/up-$h.log")
	[[ -n $p ]] && PIDS+=("$p") && eval "AGENT_$h=$p"
	tap_diag "$(cat "$LAB_DIR/up-$h.log")"
done
tap_check "natctl up on both hosts exits 0" test "$RC_a" = 0 -a "$RC_b" = 0
tap_check "... after a progress line and 'up', the peer connected directly" \
	eval 'grep -q "nt0: peers connected 1/1 (1 direct, 0 relayed)" "$LAB_DIR/up-a.log" &&
	      grep -q "^nt0: up$" "$LAB_DIR/up-a.log" && grep -q "^nt0: up$" "$LAB_DIR/up-b.log"'
tap_check "a ping crosses the tunnel" lab_exec a ping -c 2 -W 2 "${TUN[b]}"
res=$(ctl a up "$LAB_DIR/a/nt0.conf" 2>&1); code=$?
tap_check "a second natctl up of nt0 is refused: already up" \
	eval '[[ $code != 0 ]] && grep -q "already up" <<<"$res"'

mkdir -p "$LAB_DIR/copy"
ctl a showconf nt0 > "$LAB_DIR/copy/nt0.conf"; code=$?
tap_check "natctl showconf nt0 exits 0, with the private key" \
	eval '[[ $code == 0 ]] && grep -qx "PrivateKey = $(cat "$LAB_DIR/a.key")" "$LAB_DIR/copy/nt0.conf"'
tap_check "... and natagent reads it back to the same configuration" \
	eval 'diff <("$natagent" -n -v -c "$LAB_DIR/a/nt0.conf" 2>&1) \
		   <("$natagent" -n -v -c "$LAB_DIR/copy/nt0.conf" 2>&1)'

res=$(ctl a down nt0 2>&1); code=$?
tap_diag "$res"
tap_check "natctl down nt0 exits 0 and says so" eval '[[ $code == 0 ]] && grep -qx "nt0: down" <<<"$res"'
tap_check "... natagent is gone" sh -c "! kill -0 ${AGENT_a:-0} 2>/dev/null"
tap_check "... and so are its TUN device and control socket" \
	eval '! lab_exec a ip link show nt0 >/dev/null 2>&1 && [[ ! -e $LAB_DIR/run-a/nt0.sock ]]'
res=$(ctl a down nt0 2>&1); code=$?
tap_check "natctl down of an interface that is not up fails, saying why" \
	eval '[[ $code != 0 ]] && grep -q "is natagent running for nt0" <<<"$res"'
ctl b down "$LAB_DIR/b/nt0.conf" > /dev/null 2>&1
tap_check "natctl down also takes the config file" sh -c "! kill -0 ${AGENT_b:-0} 2>/dev/null"
tap_done
