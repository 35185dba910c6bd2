#!/usr/bin/env bash
# `make demo` (scripts/demo.sh) in its quick mode (DEMO_QUICK=1): does it show
# what it promises, and does it leave nothing behind?
#
#  1. A run: exit status 0, in under a minute; the output shows both agents'
#     public address and NAT behaviour, a direct path punched on both sides,
#     natctl's punch:, pair: and verdict: lines, alice's router mapping her
#     port (miniupnpd) and AutoNAT finding her public and bob private (also
#     in natctl show), a ping answered both ways, the transfer's figures both
#     ways, natctl show of both sides with an `endpoint:`, and a rendezvous
#     that relayed nothing during the transfers.
#  2. Ctrl-C (SIGINT to the demo and its children, as a terminal sends it)
#     while the agents run: exit status 130, nothing left.
#  3. KEEP=1: the lab is still there afterwards (its namespaces, the agents),
#     the printed natctl show command works, and the printed teardown command
#     removes it all.
# "Nothing left" is judged against a snapshot taken before each run, so that
# whatever else is on the machine does not matter: network namespaces, links
# and qdiscs in the root namespace, BPF programs and maps of natagent's
# (bpftool, if installed), pins under /sys/fs/bpf/natagent, natagent
# processes; and the demo's own namespaces and agent PIDs, as it printed them.
# What another lab running at the same time makes is told apart (see ours):
# its namespaces carry another suffix, its agents name other configs, and
# its BPF objects are held open by its live agents.
#
#   tests/netns/demo.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$here/lib.sh"

[[ $(id -u) == 0 ]] || tap_skip_all "needs root"
for t in "$top/natagent" "$top/natctl"; do [[ -x $t ]] || tap_skip_all "$t not built"; done
for t in ip nft python3 timeout tc; do command -v $t >/dev/null || tap_skip_all "$t not installed"; done

TMP=$(mktemp -d /tmp/natagent-demo-test.XXXXXX)
KEPT=''
cleanup() {
	# A kept lab that the test could not remove through the demo: remove it.
	[[ -z $KEPT || ! -e $KEPT/demo.state ]] || "$top/scripts/demo.sh" --down "$KEPT" >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_until TIMEOUT CMD...: poll CMD (bounded).
wait_until() {
	local end=$((SECONDS + $1))
	shift
	while :; do
		"$@" && return 0
		((SECONDS < end)) || return 1
		sleep 0.1
	done
}

# live_natagents: PIDs of natagent processes that are not zombies.
live_natagents() {
	local p
	for p in $(pgrep -x natagent); do
		[[ $(ps -o stat= -p "$p" 2>/dev/null) == Z* ]] || echo "$p"
	done | sort
}

# snapshot: what a run could leave behind, one "kind: item" per line.
snapshot() {
	ip netns list | awk '{ print "netns: " $1 }'
	ip -o link show | awk -F': ' '{ sub("@.*", "", $2); print "link: " $2 }'
	tc qdisc show | sed 's/^/qdisc: /'
	if command -v bpftool >/dev/null; then
		bpftool prog show | awk '$1 ~ /^[0-9]+:$/ && $4 ~ /^natpath/ { print "bpf prog: " $1 " " $4 }'
		bpftool map show | awk '$1 ~ /^[0-9]+:$/ && ($4 ~ /^natpath/ ||
			$4 ~ /^(nat_cache|mappings|ports|tokens|stats|events)$/) { print "bpf map: " $1 " " $4 }'
	fi
	find /sys/fs/bpf/natagent 2>/dev/null | sed 's/^/pin: /'
	live_natagents | sed 's/^/natagent: /'
}

# held_bpf: IDs of the BPF programs and maps that live processes hold open
# (their fds), and the maps of those programs.
held_bpf() {
	local ids id
	ids=$(grep -hs '^\(prog\|map\)_id:' /proc/[0-9]*/fdinfo/* | awk '{ print $2 }' | sort -u)
	echo "$ids"
	for id in $(grep -hs '^prog_id:' /proc/[0-9]*/fdinfo/* | awk '{ print $2 }' | sort -u); do
		bpftool prog show id "$id" 2>/dev/null | sed -nE 's/.*map_ids ([0-9,]+).*/\1/p' | tr , '\n'
	done
}

# ours: of the lines on stdin (new since the snapshot), those that can be
# this run's: others may run labs at the same time, so a namespace without
# the run's suffix (SUFFIX, once the output named it), a natagent whose
# command line does not name this test's directory, and a BPF object that a
# live process holds open (a running agent's) are someone else's. Root
# namespace links and qdiscs are always this run's: labs never make any.
ours() {
	local line held k id
	held=" $(held_bpf | tr '\n' ' ') "
	while IFS= read -r line; do
		case $line in
		"netns: "*)
			[[ -n $SUFFIX && $line != *"-$SUFFIX" ]] && continue ;;
		"natagent: "*)
			tr '\0' ' ' 2>/dev/null < "/proc/${line#natagent: }/cmdline" | grep -qF -- "$TMP/" || continue ;;
		"bpf prog: "* | "bpf map: "*)
			k=${line#bpf * }; id=${k%%:*}
			[[ $held == *" $id "* ]] && continue ;;
		esac
		echo "$line"
	done
}

# leftovers BEFORE: what is in a snapshot now, was not in BEFORE, and can be
# this run's (ours).
SUFFIX=''
leftovers() { comm -13 <(sort <<<"$1") <(snapshot | sort) | ours; }
nothing_left() { [[ -z $(leftovers "$1") ]]; }

# check_clean NAME BEFORE OUTPUT: nothing new since BEFORE (BPF objects are
# freed a moment after their last user: a bounded wait), and the demo's own
# namespaces and agents, as OUTPUT names them, gone.
check_clean() {
	local name=$1 before=$2 out=$3 nss pids ns p gone=1 bad=''
	SUFFIX=$(sed -nE 's/.* netns alice-([A-Za-z0-9]{6})$/\1/p' <<<"$out" | head -n1)
	wait_until 10 nothing_left "$before"
	if nothing_left "$before"; then tap_ok "$name: nothing left (netns, links, qdiscs, BPF, pins, processes)"
	else tap_fail "$name: nothing left (netns, links, qdiscs, BPF, pins, processes)" "$(leftovers "$before")"; fi
	nss=$(sed -nE 's/.* netns ([A-Za-z0-9_.-]+-[A-Za-z0-9]{6})$/\1/p' <<<"$out")
	pids=$(sed -nE 's/.*natagent pids: rdv ([0-9]+), alice ([0-9]+), bob ([0-9]+)$/\1 \2 \3/p' <<<"$out")
	for ns in $nss; do ip netns list | grep -q "^$ns\b" && bad+="netns $ns; "; done
	for p in $pids; do
		[[ -d /proc/$p && $(ps -o stat= -p "$p" 2>/dev/null) != Z* ]] &&
			[[ $(readlink "/proc/$p/exe" 2>/dev/null) == "$top/natagent" ]] && bad+="natagent $p; "
	done
	[[ -n $nss ]] || gone=0
	if ((gone)) && [[ -z $bad ]]; then tap_ok "$name: the demo's namespaces ($(wc -w <<<"$nss")) and agents ($(wc -w <<<"$pids")) are gone"
	else tap_fail "$name: the demo's namespaces and agents are gone" "${bad:-no namespace names in the output}"; fi
}

# has NAME REGEX: the run's output has a line matching REGEX.
has() {
	if grep -qE -- "$2" <<<"$OUTPUT"; then tap_ok "$1"
	else tap_fail "$1" "no line matching: $2"; fi
}

# section WHO: the output's `natctl show nt0` of WHO (up to the next one).
section() {
	awk -v h="  $1\$ natctl show nt0" '$0 == h { on = 1; next } on && /^  [a-z]+\$ / { exit } on' <<<"$OUTPUT"
}

# run_demo LOG ENV...: the quick demo with ENV, bounded; output in OUTPUT,
# status in RC.
run_demo() {
	local log=$1
	shift
	env "$@" DEMO_QUICK=1 timeout -k 10 120 "$top/scripts/demo.sh" > "$log" 2>&1
	RC=$?
	OUTPUT=$(cat "$log")
}
status_is() {
	if [[ $RC == "$2" ]]; then tap_ok "$1"
	else tap_fail "$1" "exit status $RC, want $2; the output's end:"$'\n'"$(tail -n 25 <<<"$OUTPUT")"; fi
}

# ---------------------------------------------------------------- 1. a run

before=$(snapshot)
t0=$SECONDS
run_demo "$TMP/run.log" DEMO_OUT="$TMP/out"
status_is "DEMO_QUICK=1 scripts/demo.sh exits 0 ($((SECONDS - t0)) s)" 0
secs=$(sed -nE 's/^demo: done in ([0-9]+)\.[0-9] s$/\1/p' <<<"$OUTPUT")
tap_check "it says how long it took, under a minute (${secs:-?} s)" test "${secs:-999}" -lt 60
for h in alice bob; do
	has "$h's public address and NAT behaviour" \
		"^ +[0-9.]+s +$h +public address [0-9.]+:[0-9]+ \(via 198\.18\.0\.10:3478\); NAT: [a-z -]+, mapping "
	has "$h: a direct path punched" \
		"^ +[0-9.]+s +$h +peer [a-z]+: direct path to 198\.18\.[0-9.]+:[0-9]+ punched in [0-9]+ ms \([0-9]+ checks sent"
done
has "natctl show's punch: line (succeeded)" '^      punch: attempt [0-9]+, succeeded'
has "natctl show's pair: lines (one succeeded)" '^      pair: .* \((srflx|mapped)\): succeeded'
has "alice's router mapped her port (miniupnpd)" \
	"^ +[0-9.]+s +alice +port mapping: (upnp|pcp|natpmp) maps 198\\.18\\.1\\.1:40000 -> 10\\.1\\.0\\.2:40000, lease "
has "AutoNAT: alice's mapped address is publicly reachable" \
	"^ +[0-9.]+s +alice +198\\.18\\.1\\.1:40000 is publicly reachable \\([0-9] of [0-9] dial-backs arrived\\)"
has "AutoNAT: bob's address behind the CGNAT is not" \
	"^ +[0-9.]+s +bob +198\\.18\\.2\\.1:40000 is not reachable from outside \\(0 of [0-9] dial-backs arrived\\)"
has "natctl show's verdict: line (direct path)" '^      verdict: direct path'
has "ping alice -> bob answered, with its RTT" '^  alice -> bob +10\.77\.0\.2: [1-9][0-9]* of [0-9]+ answered, rtt min/avg/max [0-9.]+/[0-9.]+/[0-9.]+ ms'
has "ping bob -> alice answered, with its RTT" '^  bob +-> alice 10\.77\.0\.1: [1-9][0-9]* of [0-9]+ answered, rtt min/avg/max [0-9.]+/[0-9.]+/[0-9.]+ ms'
has "TCP alice -> bob, with its figures" '^  alice -> bob +[0-9.]+ [KMG]Bytes in [0-9.]+ s: [0-9.]+ Mbit/s'
has "TCP bob -> alice, with its figures" '^  bob +-> alice +[0-9.]+ [KMG]Bytes in [0-9.]+ s: [0-9.]+ Mbit/s'
for h in alice bob; do
	sec=$(section "$h")
	if grep -qE '^      endpoint: 198\.18\.[0-9.]+:[0-9]+$' <<<"$sec" && grep -q '^    interface: nt0' <<<"$sec"; then
		tap_ok "natctl show of $h, with endpoint: (direct)"
	else
		tap_fail "natctl show of $h, with endpoint: (direct)" "${sec:-no natctl show of $h in the output}"
	fi
done
# natctl show tells the truth about mapping and reachability: alice's one
# mapping is verified and her public address public; bob has none, and his
# public address is private.
sec=$(section alice)
if grep -qE '^      port mapping: (upnp|pcp|natpmp) 10\.1\.0\.2:40000 -> 198\.18\.1\.1:40000, lease .*, verified from outside$' <<<"$sec" &&
   grep -qE '^      reachability: 198\.18\.1\.1:40000 public ' <<<"$sec"; then
	tap_ok "natctl show of alice: a verified port mapping, her public address public"
else
	tap_fail "natctl show of alice: a verified port mapping, her public address public" "$(grep -E 'port mapping|reachability' <<<"$sec")"
fi
sec=$(section bob)
if ! grep -qE '^      port mapping: [a-z]+ [0-9]' <<<"$sec" &&
   grep -qE '^      reachability: 198\.18\.2\.1:40000 private ' <<<"$sec"; then
	tap_ok "natctl show of bob: no port mapping, his public address private"
else
	tap_fail "natctl show of bob: no port mapping, his public address private" "$(grep -E 'port mapping|reachability' <<<"$sec")"
fi
has "the rendezvous relayed nothing during the transfers" \
	'^  the rendezvous relayed [0-9]+ datagrams before the transfers, [0-9]+ after: none of them went through it$'
has "it says the lab is removed and where the configs stay" "^Keys, configs and logs stay in $TMP/out\$"
tap_check "the configs are there to read (alice/nt0.conf, bob/nt0.conf, rdv/rdv0.conf)" \
	test -s "$TMP/out/alice/nt0.conf" -a -s "$TMP/out/bob/nt0.conf" -a -s "$TMP/out/rdv/rdv0.conf"
check_clean "after the run" "$before" "$OUTPUT"

# ---------------------------------------------------------------- 2. Ctrl-C

# SIGINT to the demo's process group while the agents run, as a terminal's
# Ctrl-C: timeout signals its own group. A shell that started this test in
# the background would have INT ignored: reset it for the demo.
before=$(snapshot)
env DEMO_QUICK=1 DEMO_OUT="$TMP/int" timeout --preserve-status -s INT -k 20 4 python3 -c '
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$top/scripts/demo.sh" > "$TMP/int.log" 2>&1
RC=$? OUTPUT=$(cat "$TMP/int.log")
status_is "Ctrl-C (SIGINT after 4 s) stops the demo: exit status 130" 130
has "it says it removes the lab" '^demo: interrupted; removing the lab$'
tap_check "the agents were running when it came (the punch was logged)" grep -q ' punched in ' "$TMP/int.log"
check_clean "after Ctrl-C" "$before" "$OUTPUT"

# ---------------------------------------------------------------- 3. KEEP=1

before=$(snapshot)
KEPT=$TMP/keep
run_demo "$TMP/keep.log" KEEP=1 DEMO_OUT="$KEPT"
status_is "KEEP=1 DEMO_QUICK=1 scripts/demo.sh exits 0" 0
has "it prints how to enter each namespace" '^  sudo ip netns exec (alice|bob|rdv)-[A-Za-z0-9]{6} +bash'
suffix=$(sed -nE 's/^  sudo ip netns exec alice-([A-Za-z0-9]{6}) .*/\1/p' <<<"$OUTPUT" | head -n1)
n=$(ip netns list | awk -v s="-${suffix:-none}" '{ print $1 }' | grep -c -- "-${suffix:-none}$")
tap_is "its 7 namespaces are still there" "$n" 7
pids=$(sed -nE 's/.*natagent pids: rdv ([0-9]+), alice ([0-9]+), bob ([0-9]+)$/\1 \2 \3/p' <<<"$OUTPUT")
alive=0
for p in $pids; do [[ $(readlink "/proc/$p/exe" 2>/dev/null) == "$top/natagent" ]] && alive=$((alive + 1)); done
tap_is "its 3 agents still run" "$alive" 3
cmd=$(sed -nE 's/^  sudo (env NATAGENT_RUN_DIR=[^ ]*run-alice .*natctl show nt0)$/\1/p' <<<"$OUTPUT")
if [[ -n $cmd ]]; then
	show=$(eval "timeout 10 $cmd" 2>&1)
	if grep -q '^  endpoint: ' <<<"$show"; then tap_ok "the printed natctl show command works (alice: endpoint:)"
	else tap_fail "the printed natctl show command works (alice: endpoint:)" "$cmd"$'\n'"$show"; fi
else
	tap_fail "the printed natctl show command works" "no such command in the output"
fi
down=$(sed -nE 's/^  sudo (.*scripts\/demo\.sh --down .*)$/\1/p' <<<"$OUTPUT")
if [[ -n $down ]]; then
	out=$(eval "timeout 60 $down" 2>&1)
	rc=$?
	if ((rc == 0)); then tap_ok "the printed teardown command works ($down)"
	else tap_fail "the printed teardown command works ($down)" "exit $rc: $out"; fi
else
	tap_fail "the printed teardown command works" "no --down command in the output"
fi
check_clean "after the teardown" "$before" "$OUTPUT"
tap_done
