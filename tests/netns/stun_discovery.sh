#!/usr/bin/env bash
# STUN discovery against real parts, for every NAT kind the lab makes:
#  - natctl netcheck classifies each site's NAT correctly against the real
#    coturn on two addresses, and against natagent's own STUN service;
#  - Debian's classic `stun` client, run against natagent's service, reaches
#    the same NAT-type verdicts it reaches against coturn;
#  - the mapping lifetime measured behind a router with short UDP conntrack
#    timeouts brackets the real timeout.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/scripts/lab.sh"
. "$here/lib.sh"

[[ $(id -u) == 0 ]] || tap_skip_all "needs root"
for tool in turnserver stun nft; do
	command -v "$tool" >/dev/null || tap_skip_all "$tool not installed"
done

lab_traps

KINDS="public eim addr port symmetric cgnat"
COTURN1=198.18.0.10 COTURN2=198.18.0.11
RDV1=198.18.0.30 RDV2=198.18.0.31

# netcheck's verdict per kind: "mapping / filtering".
declare -A WANT=(
	[public]="none (no NAT) / endpoint-independent"
	[eim]="endpoint-independent / endpoint-independent"
	[addr]="endpoint-independent / address-dependent"
	[port]="endpoint-independent / address-and-port-dependent"
	[symmetric]="address-and-port-dependent / address-and-port-dependent"
	[cgnat]="endpoint-independent / address-and-port-dependent"
)
# The classic client's verdicts (as in lab_selftest.sh against coturn).
declare -A WANT_STUN=(
	[public]="Open"
	[eim]="Independent Mapping, Independent Filter"
	[addr]="Independent Mapping, Address Dependent Filter"
	[port]="Independent Mapping, Port Dependent Filter"
	[symmetric]="Dependent Mapping"
	[cgnat]="Independent Mapping, Port Dependent Filter"
)

build_lab() {
	lab_internet || return 1
	lab_server stun "$COTURN1" "$COTURN2" || return 1
	lab_server rdv "$RDV1" "$RDV2" || return 1
	local k
	for k in $KINDS; do lab_site "$k" "$k" || return 1; done
	lab_coturn stun || return 1
	umask 077
	cat > "$LAB_DIR/rdv.conf" <<-CONF
	[Interface]
	PrivateKey = $("$top/natctl" genkey)
	[Rendezvous]
	Listen = $RDV1:3478
	AlternateListen = $RDV2:3479
	CONF
	lab_spawn rdv "$LAB_DIR/rdv.log" "$top/natagent" -c "$LAB_DIR/rdv.conf"
	RDV_PID=$LAB_LAST_PID
	wait_for 10 grep -q ready "$LAB_DIR/rdv.log"
}

# netcheck SITE SERVER [ARGS...]: sets NC (the JSON) and NC_VERDICT.
netcheck() {
	local site=$1 server=$2
	shift 2
	NC=$(lab_exec "$site" timeout 60 "$top/natctl" netcheck --json "$@" "$server:3478" 2>&1)
	NC_VERDICT="$(json_str mapping) / $(json_str filtering)"
}
json_str() { sed -nE "s/^ *\"$1\": \"([^\"]*)\".*/\1/p" <<<"$NC"; }

test_netcheck() {
	local server=$1 label=$2 k public
	for k in $KINDS; do
		netcheck "$k" "$server"
		tap_diag "$k via $label: $(tr -d '\n' <<<"$NC" | tr -s ' ')"
		tap_is "$k: netcheck against $label says ${WANT[$k]}" "$NC_VERDICT" "${WANT[$k]}"
		public=$(sed -nE 's/.*"public": "([0-9.]+):[0-9]+".*/\1/p' <<<"$NC" | head -n1)
		tap_is "$k: netcheck against $label finds the public address" "$public" "$(lab_wan_ip "$k")"
	done
}

test_stun_client() {
	local k out line verdict
	for k in $KINDS; do
		out=$(timeout 20 ip netns exec "$(lab_ns "$k")" stun "$RDV1" 2>&1) || true
		line=$(grep -m1 '^Primary:' <<<"$out" | tr -s '\t ' ' ')
		verdict=$(sed -E 's/^Primary: //; s/ +$//; s/, (no|will) hairpin$//;
			s/, (preserves ports|random port)$//' <<<"$line")
		tap_diag "$k: stun $RDV1: $line"
		tap_is "$k: stun client against natagent's service says '${WANT_STUN[$k]}'" \
			"$verdict" "${WANT_STUN[$k]}"
	done
}

test_lifetime() {
	# Mappings idle for longer than 3 s die on this router; the probe
	# gaps 1, 2 and 6 s must find it alive at 2 and dead at 6.
	lab_conntrack_timeout "$(lab_router port)" 3
	netcheck port "$RDV1" --gaps 1,2,6
	tap_diag "lifetime: $(grep lifetime <<<"$NC")"
	tap_is "port: lifetime measured between the 2 s and 6 s gaps (conntrack timeout 3 s)" \
		"$(grep -o '"lifetime": {[^}]*}' <<<"$NC")" '"lifetime": {"alive_s": 2.000, "dead_s": 6.000}'
}

test_agent_discovery() {
	# The daemon learns its own public address and NAT from its ListenPort
	# socket at start, against coturn.
	cat > "$LAB_DIR/pa.conf" <<-CONF
	[Interface]
	PrivateKey = $("$top/natctl" genkey)
	ListenPort = 45000
	Mode = proxy
	ForwardTo = 127.0.0.1:51820
	STUN = $COTURN1:3478
	CONF
	lab_spawn port "$LAB_DIR/pa.log" "$top/natagent" -c "$LAB_DIR/pa.conf"
	local want="public address $(lab_wan_ip port):45000 (via $COTURN1:3478); NAT: port-restricted cone"
	wait_for 15 grep -q "public address" "$LAB_DIR/pa.log"
	tap_diag "$(grep "public address" "$LAB_DIR/pa.log")"
	tap_check "natagent logs its public address and NAT type, learnt on its own port" \
		grep -qF "$want" "$LAB_DIR/pa.log"
	kill "$LAB_LAST_PID"
}

test_service_stats() {
	kill -TERM "$RDV_PID"
	wait_for 5 grep -q "STUN service answered" "$LAB_DIR/rdv.log"
	local line
	line=$(grep "STUN service answered" "$LAB_DIR/rdv.log")
	tap_diag "$line"
	[[ $line =~ answered\ ([0-9]+)\ of ]] && (( BASH_REMATCH[1] > 0 ))
	tap_is "natagent's service counted its answers and stopped cleanly" "$?" 0
}

if ! build_lab; then
	tap_fail "lab builds" "$(tail -n 20 "$LAB_DIR"/*.log 2>/dev/null)"
	tap_done
fi
tap_ok "lab with coturn and natagent's STUN service"
test_netcheck "$COTURN1" coturn
test_netcheck "$RDV1" natagent
test_stun_client
test_lifetime
test_agent_discovery
test_service_stats
tap_done
