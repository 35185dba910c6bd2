#!/usr/bin/env bash
# AutoNAT reachability (issue 8). The lab: a rendezvous on the internet with
# two addresses (QUIC + STUN on 198.18.0.10:3478, AlternateListen
# 198.18.0.11:3479; dial-backs leave from a port of their own on .11), a
# second rendezvous without AlternateListen (198.18.0.30), a load host
# (198.18.0.20), host pr behind a port-restricted NAT and host pub with a
# public address, both natagents with the BPF fast path on. Judged by
# packets (nftables counters on the hosts, routers and the rendezvous, the
# XDP program's own counters) as well as by logs and natctl show:
#  - pr's reflexive address becomes private: its router drops every
#    dial-back (counted there), none reaches pr; its NAT does hold a hole
#    from one of the STUN service's sockets on the second IP (discovery
#    sent there), which is why dial-backs come from a port of their own;
#  - pr's host address (10.x) is refused as private, never dialed;
#  - pub's address becomes public: the dial-backs reach its socket, passed
#    by its XDP program (a STUN indication without path token);
#  - a second address on pub's link is refused as not the requester's: the
#    DIALRESP says so (pub's log), natctl show says so, the rendezvous
#    counts it, and no packet goes there;
#  - a rendezvous without a second address says it cannot serve AutoNAT;
#  - the rate limits hold under a bounded burst of DIALREQs (bench/rdvload
#    --mode dialreq): one peer gets at most 12 (+ refill) dial-backs of 20
#    asked, eight peers together at most 60 (+ refill) of 96, counted as
#    they arrive at the load host.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/scripts/lab.sh"
. "$top/scripts/agentlab.sh"
. "$here/lib.sh"

tap_needs python3
rdvload=${RDVLOAD:-$top/build/bench/rdvload}
[[ -x $rdvload ]] || tap_skip_all "$rdvload not built"

PIN=$(mktemp -d /tmp/natagent-autonat.XXXXXX)
cleanup() {
	local rc=$? d
	lab_cleanup
	for d in "$PIN"/*; do mountpoint -q "$d" && umount "$d"; done
	rm -rf "$PIN"
	return $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

RDV=198.18.0.10 RDV2=198.18.0.11 RDVB=198.18.0.30 JUNK=198.18.0.20 PORT=41001
D=   # the agents' directory, once the lab exists

# judge NS CHAIN_HOOK RULE...: a table inet aj with one counter per rule,
# named by the rule's first word: "NAME match...". Hook input or output, or
# prerouting (before the NAT's own filters).
judge() {
	local ns=$1 hook=$2 rules="" counters="" r name
	shift 2
	for r in "$@"; do
		name=${r%% *}
		counters+="counter $name {}"$'\n'
		rules+="${r#* } counter name $name"$'\n'
	done
	lab_exec "$ns" nft -f - <<-NFT
	table inet aj {
		$counters
		chain c { type filter hook $hook priority -300; policy accept;
			$rules
		}
	}
	NFT
}
# packets NS NAME: that counter's packets.
packets() {
	lab_exec "$1" nft list counter inet aj "$2" | sed -nE 's/.*packets ([0-9]+).*/\1/p'
}

# spawn_bpf HOST: the agent of DIR/HOST with the BPF fast path on (pins in
# a bpffs of its own, which natctl bpf reads too) and debug logs.
spawn_bpf() {
	mkdir -p "$D/run-$1" "$PIN/$1" && mount -t bpf bpf "$PIN/$1" || return 1
	lab_spawn "$1" "$D/$1.log" env NATAGENT_RUN_DIR="$D/run-$1" NATAGENT_BPF_PIN_ROOT="$PIN/$1" \
		"$natagent" -d -c "$D/$1/nt0.conf" || return 1
	printf -v "PID_$1" '%s' "$LAB_LAST_PID"
	wait_for 10 grep -qs ': ready$' "$D/$1.log"
}
# xdp_passed HOST: indications the host's XDP passed to the socket
xdp_passed() {
	lab_exec "$1" env NATAGENT_BPF_PIN_ROOT="$PIN/$1" "$natctl" bpf --json | python3 -c '
import json, sys
print(sum(s["packets"] for i in json.load(sys.stdin)["interfaces"] for s in i["stats"]
          if s["reason"] == "stun_indication" and s["action"] == "pass"))'
}
# svc KEY [NS_RDV]: a number or string of the rendezvous service in natctl show --json
svc() {
	NATAGENT_RUN_DIR=$LAB_DIR/run-${2:-rdv} "$natctl" show "${2:-rdv}0" --json | python3 -c '
import json, sys
print(json.load(sys.stdin)["rendezvous_service"].get(sys.argv[1], ""))' "$1"
}
# load NS OUT ARGS...: rdvload, bounded, its key=value line in OUT
load() {
	local ns=$1 out=$2
	shift 2
	lab_exec "$ns" timeout 60 "$rdvload" --mode dialreq --duration 30 --timeout 10 "$@" \
		> "$out" 2> "$out.err"
}
# val FILE KEY: KEY's value in rdvload's line
val() { sed -nE "s/.* $2=([0-9.]+).*/\1/p" "$1"; }

setup() {
	lab_internet && lab_server rdv "$RDV" "$RDV2" && lab_server junk "$JUNK" &&
		lab_server rdvb "$RDVB" && lab_site pr port && lab_site pub public || return 1
	D=$LAB_DIR/agents
	mkdir -p "$D" "$LAB_DIR/run-rdv" "$LAB_DIR/run-rdvb"
	# The rendezvous's control socket in the lab's directory (natctl show).
	export NATAGENT_RUN_DIR=$LAB_DIR/run-rdv
	rdv_start -d || return 1
	unset NATAGENT_RUN_DIR
	keys "$LAB_DIR" rdvb && mkdir -p "$LAB_DIR/rdvb" || return 1
	cat > "$LAB_DIR/rdvb/rdvb0.conf" <<-CONF
	[Interface]
	PrivateKey = $(cat "$LAB_DIR/rdvb.key")
	[Rendezvous]
	Listen = $RDVB:3478
	CONF
	lab_spawn rdvb "$LAB_DIR/rdvb.log" env NATAGENT_RUN_DIR="$LAB_DIR/run-rdvb" \
		"$natagent" -d -B -c "$LAB_DIR/rdvb/rdvb0.conf" || return 1
	wait_for 10 grep -qs ': ready$' "$LAB_DIR/rdvb.log" || return 1
	# Packet judges, before any agent runs.
	judge rdv output \
		"db_pr ip saddr $RDV2 udp sport != { 3478, 3479 } ip daddr $(lab_wan_ip pr)" \
		"db_pub ip saddr $RDV2 udp sport != { 3478, 3479 } ip daddr $(lab_host_ip pub)" \
		"db_other ip saddr $RDV2 udp sport != { 3478, 3479 } ip daddr != { $(lab_wan_ip pr), $(lab_host_ip pub), $JUNK }" || return 1
	judge pr-gw prerouting "at_gw iifname \"wan\" ip saddr $RDV2 udp sport != { 3478, 3479 } udp dport $PORT" || return 1
	judge pr input "at_pr ip saddr $RDV2 udp sport != { 3478, 3479 }" || return 1
	judge pub input "at_pub ip saddr $RDV2 udp sport != { 3478, 3479 } udp dport $PORT" || return 1
	judge junk input "at_junk ip saddr $RDV2 udp sport != { 3478, 3479 }" || return 1
	keys "$D" ghost pr pub || return 1
	host_conf "$D" pr $PORT 10.77.0.1 ghost 10.77.0.9 && host_conf "$D" pub $PORT 10.77.0.2 ghost 10.77.0.9 &&
		chmod 600 "$D"/*/nt0.conf || return 1
	spawn_bpf pr && spawn_bpf pub
}

if ! setup; then
	tap_fail "a rendezvous with two addresses, a NATed and a public host" \
		"$(tail -n 5 "$LAB_DIR"/*.log "$D"/*.log 2>/dev/null)"
	tap_done
fi
tap_ok "a rendezvous with two addresses, a NATed and a public host"

PR_SRFLX=$(lab_wan_ip pr):$PORT PR_HOST=$(lab_host_ip pr):$PORT PUB=$(lab_host_ip pub):$PORT
dial_from=$(svc autonat_from)
tap_diag "dial-backs leave from $dial_from"
tap_check "the rendezvous dials back from AlternateListen's IP, on a port of its own" \
	eval '[[ $dial_from == $RDV2:* && $dial_from != $RDV2:3479 && $dial_from != $RDV2:3478 ]]'
tap_check "both agents run the XDP fast path" \
	wait_for 10 eval 'grep -q "XDP" "$D/pr.log" && grep -q "XDP" "$D/pub.log"'

# ---- behind the port-restricted NAT: private
tap_check "pr: its reflexive address $PR_SRFLX becomes private (0 of 3), logged at info" \
	wait_for 30 grep -q "$PR_SRFLX is not reachable from outside (0 of 3 dial-backs arrived)" "$D/pr.log"
show "$D" pr > "$LAB_DIR/show-pr.txt"
tap_diag "$(grep -E '^interface|reachability|rendezvous:' "$LAB_DIR/show-pr.txt")"
tap_check "natctl show on pr: $PR_SRFLX private, 0 of 3" \
	grep -qE "^  reachability: $PR_SRFLX private \(0 of 3 dial-backs arrived\), checked " "$LAB_DIR/show-pr.txt"
tap_check "natctl show on pr: its host address $PR_HOST refused as private" \
	grep -qE "^  reachability: $PR_HOST unknown, a private address, never dialed" "$LAB_DIR/show-pr.txt"
gw=$(packets pr-gw at_gw) host=$(packets pr at_pr) sent=$(packets rdv db_pr)
tap_diag "dial-backs to pr's NAT: $sent sent by the rendezvous, $gw at the router, $host at pr"
tap_check "by packets: at least 3 dial-backs reached pr's router, none reached pr" \
	test "$gw" -ge 3 -a "$host" = 0 -a "$sent" -ge "$gw"
tap_diag "pr's router: $(lab_exec pr-gw conntrack -L -p udp 2>/dev/null | grep "dst=$RDV2 ")"
tap_check "pr's NAT holds a hole from the STUN service's $RDV2:3478 (discovery's test II went there)" \
	eval "lab_exec pr-gw conntrack -L -p udp 2>/dev/null | grep -q 'dst=$RDV2 sport=$PORT dport=3478'"
tap_check "pr's natctl show --json: the same, as objects" \
	eval 'NATAGENT_RUN_DIR=$D/run-pr "$natctl" show nt0 --json | python3 -c "
import json, sys
r = {x[\"address\"]: x for x in json.load(sys.stdin)[\"reachability\"]}
a, h = r[\"$PR_SRFLX\"], r[\"$PR_HOST\"]
assert a[\"state\"] == \"private\" and a[\"arrived\"] == 0 and a[\"results\"] == 3, a
assert \"rendezvous\" in a[\"by\"] and h[\"refused\"] == \"private\" and h[\"state\"] == \"unknown\", h"'

# ---- the public host: public
tap_check "pub: $PUB becomes publicly reachable (3 of 3), logged at info" \
	wait_for 20 grep -q "$PUB is publicly reachable (3 of 3 dial-backs arrived)" "$D/pub.log"
show "$D" pub > "$LAB_DIR/show-pub.txt"
tap_diag "$(grep -E 'reachability' "$LAB_DIR/show-pub.txt")"
tap_check "natctl show on pub: $PUB public, 3 of 3" \
	grep -qE "^  reachability: $PUB public \(3 of 3 dial-backs arrived\), checked " "$LAB_DIR/show-pub.txt"
got=$(packets pub at_pub) passed=$(xdp_passed pub)
tap_diag "dial-backs at pub's socket: $got (nftables input); pub's XDP passed $passed STUN indications"
tap_check "by packets: at least 3 dial-backs reached pub, through its XDP program (passed as indications)" \
	test "$got" -ge 3 -a "$passed" -ge 3

# ---- a second address on pub's link: not the requester's
PUB3=$(lab_host_ip pub | sed -E 's/\.2$/.3/'):$PORT
lab_exec pub ip addr add "${PUB3%:*}/24" dev eth0
tap_check "pub: a new host address $PUB3 is asked about and refused: not the requester's (DIALRESP)" \
	wait_for 10 grep -q "reachability of $PUB3: the rendezvous did not dial: not the requester's address" "$D/pub.log"
tap_check "natctl show on pub: $PUB3 refused, the rendezvous sees us at another IP" \
	eval 'show "$D" pub | grep -qE "^  reachability: $PUB3 unknown, the rendezvous sees us at another IP"'
tap_check "the rendezvous logged the refusal" \
	grep -q "seen as $PUB: .*$PUB3 not the requester's address" "$LAB_DIR/rdv.log"
tap_check "the rendezvous counted it (autonat_refused_not_yours) and the private one" \
	eval '(( $(svc autonat_refused_not_yours) >= 1 && $(svc autonat_refused_private) >= 1 ))'
tap_check "by packets: no dial-back went anywhere but pr's NAT, pub and the load host" \
	test "$(packets rdv db_other)" = 0
tap_check "pub's own address stays public meanwhile" \
	eval 'show "$D" pub | grep -qE "^  reachability: $PUB public"'

# ---- a rendezvous without a second address
rb=$(cat "$LAB_DIR/rdvb.pub")
load junk "$LAB_DIR/load-b.out" --server $RDVB:3478 --server-key "$rb" --peers 1 --requests 3
tap_diag "$(cat "$LAB_DIR/load-b.out")"
tap_check "a rendezvous without AlternateListen says so at start" \
	grep -q "AutoNAT unavailable (dial-backs need AlternateListen)" "$LAB_DIR/rdvb.log"
tap_check "... answers every address 'unavailable' and dials nothing" \
	eval '[[ $(val "$LAB_DIR/load-b.out" unavailable) == 3 && $(val "$LAB_DIR/load-b.out" dialbacks) == 0 ]]'
tap_check "... and natctl show says it" \
	eval 'NATAGENT_RUN_DIR=$LAB_DIR/run-rdvb "$natctl" show rdvb0 | grep -q "^  autonat: unavailable"'

# ---- the rate limits, under a bounded burst from the load host
r=$(cat "$LAB_DIR/rdv.pub")
before=$(packets junk at_junk)
load junk "$LAB_DIR/load-1.out" --server $RDV:3478 --server-key "$r" --peers 1 --requests 20
at=$(( $(packets junk at_junk) - before ))
tap_diag "one peer, 20 DIALREQs: $(cat "$LAB_DIR/load-1.out"); $at dial-backs at the load host (nftables)"
d1=$(val "$LAB_DIR/load-1.out" dialbacks) s1=$(val "$LAB_DIR/load-1.out" seconds)
lim1=$(( 12 + ${s1%.*} / 5 + 1 ))
tap_check "per peer: all 20 answered, at most 12 (+1 per 5 s) dialed, the rest rate limited" \
	eval '(( $(val "$LAB_DIR/load-1.out" answered) == 20 && ${d1:-99} <= lim1 &&
		$(val "$LAB_DIR/load-1.out" dialed) + $(val "$LAB_DIR/load-1.out" rate_limited) == 20 &&
		$(val "$LAB_DIR/load-1.out" rate_limited) >= 20 - lim1 ))'
tap_check "per peer, by packets: the dial-backs that arrived are exactly those dialed ($at)" \
	eval '(( at == d1 && d1 == $(val "$LAB_DIR/load-1.out" dialed) && d1 >= 1 ))'

before=$(packets junk at_junk) t0=$EPOCHREALTIME
load junk "$LAB_DIR/load-8.out" --server $RDV:3478 --server-key "$r" --peers 8 --requests 12
at=$(( $(packets junk at_junk) - before )) secs=$(ms_since "$t0")
tap_diag "eight peers, 12 DIALREQs each: $(cat "$LAB_DIR/load-8.out"); $at dial-backs at the load host"
d8=$(val "$LAB_DIR/load-8.out" dialbacks)
lim8=$(( 60 + secs / 1000 + 1 ))
tap_check "in all: 96 answered, at most 60 (+1 a second) dialed though each peer was within its own limit" \
	eval '(( $(val "$LAB_DIR/load-8.out" answered) == 96 && ${d8:-999} <= lim8 &&
		$(val "$LAB_DIR/load-8.out" rate_limited) >= 96 - lim8 ))'
tap_check "in all, by packets: never more dial-backs arrived than the limit ($at <= $lim8)" \
	eval '(( at == d8 && at <= lim8 && at >= 1 ))'
tap_check "the rendezvous counted the rate-limited addresses" \
	eval '(( $(svc autonat_rate_limited) >= 96 - lim8 + 20 - lim1 ))'
NATAGENT_RUN_DIR=$LAB_DIR/run-rdv "$natctl" show rdv0 > "$LAB_DIR/show-rdv.txt" 2>&1
tap_diag "$(grep -E '^rendezvous service|autonat' "$LAB_DIR/show-rdv.txt")"
tap_check "natctl show on the rendezvous: the AutoNAT lines" \
	eval 'grep -q "^  autonat: dial-backs from $dial_from, " "$LAB_DIR/show-rdv.txt" &&
	      grep -qE "^  autonat refused: .*[0-9]+ not the requester.s address.*[0-9]+ private.*[0-9]+ rate limited" "$LAB_DIR/show-rdv.txt"'
tap_check "no agent flapped: one change each for pr's and pub's address" \
	eval '(( $(grep -c "$PR_SRFLX is " "$D/pr.log") == 1 && $(grep -c "$PUB is " "$D/pub.log") == 1 ))'
tap_done
