#!/usr/bin/env bash
# The real miniupnpd in a lab router (scripts/lab.sh: lab_miniupnpd), driven by
# Debian's own clients, so that natagent's UPnP / NAT-PMP / PCP client has a
# proven server to be tested against:
#  - on a port-restricted (masquerade) router, each protocol alone: UPnP with
#    upnpc, NAT-PMP with natpmpc, PCP with a hand-made MAP request (Debian has
#    no PCP client): the mapping is made and listed, a datagram from an
#    internet host to the router's WAN address and the external port reaches a
#    listener on the LAN host, and no longer does once the short lease has
#    expired, once the mapping is deleted, or once lab_miniupnpd_restart has
#    "rebooted" the router (epoch and uptime back to 0); the protocols left out
#    are not served;
#  - on a symmetric and on a full-cone (eim) router, all three at once:
#    mappings forward, and a restart loses them;
#  - behind a CGN (cgnat site, miniupnpd on the home router), miniupnpd's STUN
#    check finds the upstream NAT filtering and it refuses every mapping, as a
#    real home router behind a carrier NAT should.
# Each knock from the internet uses its own source port: a remote ip:port
# that got in once keeps its conntrack entry after the mapping is gone.
# shellcheck source-path=SCRIPTDIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/scripts/lab.sh"
. "$here/lib.sh"

[[ $(id -u) == 0 ]] || tap_skip_all "needs root"
for tool in /usr/sbin/miniupnpd upnpc natpmpc turnserver nft conntrack ss /usr/bin/python3; do
	command -v "$tool" >/dev/null || tap_skip_all "$tool not installed"
done

lab_traps

STUN1=198.18.0.10 STUN2=198.18.0.11 OUTSIDE=198.18.0.20
PY=/usr/bin/python3
PROBE="$here/upnp_probe.py"
PORTS=(40100 40101 40102 40110 40111 40112 40120 40121 40122 40123 40130 40131 40132)
KNOCK_SRC=20000   # source port of the last knock; each knock takes the next
NONCE=6e6174616765 NONCE+=6e74206c6162   # 12 bytes, for PCP renew/delete

# not CMD...: succeeds when CMD fails (for tap_check).
# shellcheck disable=SC2317  # called through tap_check
not() { ! "$@"; }

# tap_has NAME TEXT WANT: ok if TEXT contains WANT; else the text as detail.
tap_has() {
	if [[ $2 == *"$3"* ]]; then tap_ok "$1"; else tap_fail "$1" "want: $3"$'\n'"in:   $(tail -n 12 <<<"$2")"; fi
}

build_lab() {
	lab_internet &&
		lab_server stun "$STUN1" "$STUN2" &&
		lab_server outside "$OUTSIDE" &&
		lab_site port port &&
		lab_site sym symmetric &&
		lab_site eim eim &&
		lab_site cg cgnat &&
		lab_coturn stun || return 1
	local s
	for s in port sym eim; do
		lab_spawn "$s" "$LAB_DIR/echo-$s.log" "$PY" "$PROBE" echo 150 "${PORTS[@]}" || return 1
		wait_for 5 lab_udp_bound "$s" 0.0.0.0 40132 || return 1
	done
}

# knock_ok NAME SITE PORT / knock_no NAME SITE PORT: a datagram from the
# internet to the site's WAN address:PORT does / does not reach the LAN host's
# listener (its echo coming back). A miss waits 1 s.
knock_ok() {
	KNOCK_SRC=$((KNOCK_SRC + 1))
	tap_check "$1" lab_exec outside "$PY" "$PROBE" knock "$(lab_wan_ip "$2")" "$3" "k$KNOCK_SRC" "$KNOCK_SRC" 2
}
knock_no() {
	KNOCK_SRC=$((KNOCK_SRC + 1))
	tap_check "$1" not lab_exec outside "$PY" "$PROBE" knock "$(lab_wan_ip "$2")" "$3" "k$KNOCK_SRC" "$KNOCK_SRC" 1
}

# mapped SITE PORT: does miniupnpd hold a UDP mapping of external PORT to the
# LAN host's PORT (its nftables DNAT)? unmapped SITE PORT: no mapping of PORT.
# shellcheck disable=SC2317  # called through tap_check
mapped() { [[ $(lab_miniupnpd_mappings "$1") == *"udp $2 $(lab_host_ip "$1"):$2"* ]]; }
# shellcheck disable=SC2317  # called through wait_for
unmapped() { [[ $(lab_miniupnpd_mappings "$1") != *"udp $2 "* ]]; }

# expired NAME SITE PORT T0 LEASE: the mapping made at T0 (EPOCHREALTIME
# digits) with LEASE seconds disappears, not before LEASE - 1 s, within 4 s of it.
expired() {
	local t1 ms
	if wait_for $(($5 + 4)) unmapped "$2" "$3"; then
		t1=${EPOCHREALTIME//[!0-9]/}
		ms=$(((t1 - $4) / 1000))
		tap_check "$1 (after $ms ms)" test "$ms" -ge $((($5 - 1) * 1000))
	else
		tap_fail "$1" "$(lab_miniupnpd_mappings "$2")"
	fi
}

now() { echo "${EPOCHREALTIME//[!0-9]/}"; }

# upnpc SITE ARGS...: Debian's client on the site's host, at the known URL
# (-i: the IGD's external address is reserved, see lab_miniupnpd).
upnpc_at() {
	local s=$1
	shift
	lab_exec "$s" timeout 10 upnpc -i -u "$(lab_miniupnpd_url "$s")" "$@" 2>&1
}
natpmpc_at() {
	local s=$1
	shift
	lab_exec "$s" timeout 10 natpmpc -g "10.${LAB_IDX[$s]}.0.1" "$@" 2>&1
}
pcp_at() {
	local s=$1
	shift
	lab_exec "$s" timeout 10 "$PY" "$PROBE" pcp "10.${LAB_IDX[$s]}.0.1" "$@" 2>&1
}

start() {   # SITE PROTO...: lab_miniupnpd, as a check
	local s=$1
	shift
	if lab_miniupnpd "$s" "$@"; then
		tap_is "$s: miniupnpd ($*) up, forwarding enabled by its STUN check" "${LAB_UPNPD_FWD[$s]}" enabled
	else
		tap_fail "$s: miniupnpd ($*) up"
		return 1
	fi
}

test_upnp() {
	local s=port host wan out t0 up1 up2
	host=$(lab_host_ip $s) wan=$(lab_wan_ip $s)
	start $s upnp || return
	out=$(lab_exec $s timeout 10 upnpc -i -s 2>&1)
	tap_has "$s: SSDP finds the IGD; UPNP_GetValidIGD() gives 2 (external address reserved)" \
		"$out" "Found a (not connected?) IGD : http://10.${LAB_IDX[$s]}.0.1:5000/ctl/IPConn"
	out=$(upnpc_at $s -a "$host" 40100 40100 UDP 4)
	t0=$(now)
	tap_has "upnp: upnpc -a maps 40100 for 4 s" "$out" \
		"external $wan:40100 UDP is redirected to internal $host:40100 (duration=4)"
	tap_has "upnp: upnpc -l lists it" "$(upnpc_at $s -l)" "UDP 40100->$host:40100 'libminiupnpc' ''"
	tap_check "upnp: miniupnpd installed its DNAT" mapped $s 40100
	knock_ok "upnp: the internet reaches the LAN host through the mapping" $s 40100
	tap_has "upnp: NAT-PMP is not served" "$(natpmpc_at $s -a 40109 40109 udp 4)" "does not support nat-pmp"
	tap_is "upnp: PCP is not served" "$(pcp_at $s 40109 40109 4)" refused

	tap_has "upnp: another mapping (40101)" "$(upnpc_at $s -a "$host" 40101 40101 UDP 60)" \
		"external $wan:40101 UDP is redirected to internal $host:40101 (duration=60)"
	knock_ok "upnp: it forwards" $s 40101
	tap_has "upnp: upnpc -d deletes it" "$(upnpc_at $s -d 40101 UDP)" "UPNP_DeletePortMapping() returned : 0"
	tap_check "upnp: its DNAT is gone" unmapped $s 40101
	knock_no "upnp: the deleted mapping no longer forwards" $s 40101

	expired "upnp: the 4 s lease expires" $s 40100 "$t0" 4
	knock_no "upnp: the expired mapping no longer forwards" $s 40100

	upnpc_at $s -a "$host" 40102 40102 UDP 60 >/dev/null
	knock_ok "upnp: a 60 s mapping forwards" $s 40102
	up1=$(upnpc_at $s -s | sed -nE 's/.*uptime=([0-9]+)s.*/\1/p')
	lab_miniupnpd_restart $s || tap_fail "$s: lab_miniupnpd_restart"
	up2=$(upnpc_at $s -s | sed -nE 's/.*uptime=([0-9]+)s.*/\1/p')
	tap_check "upnp: after lab_miniupnpd_restart the uptime starts again ($up1 s, then $up2 s)" \
		test "${up2:-99}" -lt "${up1:-0}"
	out=$(upnpc_at $s -l)
	tap_check "upnp: after the restart the mapping is not listed" not grep -q "40102->" <<<"$out"
	tap_check "upnp: nor installed" unmapped $s 40102
	knock_no "upnp: nor forwarding" $s 40102
	lab_miniupnpd_stop $s
}

test_natpmp() {
	local s=port host wan out t0 e1 e2
	host=$(lab_host_ip $s) wan=$(lab_wan_ip $s)
	start $s natpmp || return
	tap_has "natpmp: natpmpc reads the public address" "$(natpmpc_at $s)" "Public IP address : $wan"
	# natpmpc without -g finds the gateway by the default route.
	out=$(lab_exec $s timeout 10 natpmpc -a 40110 40110 udp 4 2>&1)
	t0=$(now)
	tap_has "natpmp: natpmpc -a maps 40110 for 4 s" "$out" \
		"Mapped public port 40110 protocol UDP to local port 40110 liftime 4"
	tap_check "natpmp: miniupnpd installed its DNAT" mapped $s 40110
	knock_ok "natpmp: the internet reaches the LAN host through the mapping" $s 40110
	tap_has "natpmp: UPnP is not served" "$(upnpc_at $s -s)" "Connection refused"
	tap_is "natpmp: PCP is not served (rejected by the lab's filter)" "$(pcp_at $s 40109 40109 4)" refused

	natpmpc_at $s -a 40111 40111 udp 60 >/dev/null
	knock_ok "natpmp: another mapping (40111) forwards" $s 40111
	tap_has "natpmp: lifetime 0 deletes it" "$(natpmpc_at $s -a 40111 40111 udp 0)" \
		"Mapped public port 0 protocol UDP to local port 40111 liftime 0"
	tap_check "natpmp: its DNAT is gone" unmapped $s 40111
	knock_no "natpmp: the deleted mapping no longer forwards" $s 40111

	expired "natpmp: the 4 s lease expires" $s 40110 "$t0" 4
	knock_no "natpmp: the expired mapping no longer forwards" $s 40110

	out=$(natpmpc_at $s -a 40112 40112 udp 60)
	e1=$(sed -nE 's/^epoch = ([0-9]+)$/\1/p' <<<"$out" | tail -n 1)
	knock_ok "natpmp: a 60 s mapping forwards" $s 40112
	lab_miniupnpd_restart $s || tap_fail "$s: lab_miniupnpd_restart"
	e2=$(natpmpc_at $s | sed -nE 's/^epoch = ([0-9]+)$/\1/p' | tail -n 1)
	tap_check "natpmp: after lab_miniupnpd_restart the epoch starts again ($e1, then $e2)" \
		test "${e2:-99}" -lt "${e1:-0}"
	tap_check "natpmp: after the restart the mapping is gone" unmapped $s 40112
	knock_no "natpmp: and no longer forwards" $s 40112
	lab_miniupnpd_stop $s
}

test_pcp() {
	local s=port host wan out t0 e1 e2
	host=$(lab_host_ip $s) wan=$(lab_wan_ip $s)
	start $s pcp || return
	tap_check "pcp: miniupnpd's log says it listens for PCP" \
		grep -q "Listening for NAT-PMP/PCP traffic on port 5351" "${LAB_UPNPD_LOG[$s]}"
	out=$(pcp_at $s 40120 40120 4)
	t0=$(now)
	tap_has "pcp: MAP 40120 for 4 s granted as asked" "$out" "result 0 lifetime 4 epoch"
	tap_has "pcp: on the router's public address and the suggested port" "$out" "eport 40120 eaddr $wan"
	tap_check "pcp: miniupnpd installed its DNAT" mapped $s 40120
	knock_ok "pcp: the internet reaches the LAN host through the mapping" $s 40120
	tap_has "pcp: NAT-PMP is not served (rejected by the lab's filter)" \
		"$(natpmpc_at $s -a 40109 40109 udp 4)" "does not support nat-pmp"
	tap_has "pcp: UPnP is not served" "$(upnpc_at $s -s)" "Connection refused"

	tap_has "pcp: another mapping (40121)" "$(pcp_at $s 40121 40121 60 "$NONCE")" "result 0 lifetime 60"
	knock_ok "pcp: it forwards" $s 40121
	tap_has "pcp: deleting it with another nonce is refused (NOT_AUTHORIZED)" \
		"$(pcp_at $s 40121 40121 0)" "result 2 "
	tap_has "pcp: lifetime 0 with its nonce deletes it" "$(pcp_at $s 40121 40121 0 "$NONCE")" "result 0 lifetime 0"
	tap_check "pcp: its DNAT is gone" unmapped $s 40121
	knock_no "pcp: the deleted mapping no longer forwards" $s 40121

	out=$(pcp_at $s 40122 40122 100000)
	tap_has "pcp: a lifetime over max_lifetime is cut to 3600 s" "$out" "result 0 lifetime 3600"
	expired "pcp: the 4 s lease expires" $s 40120 "$t0" 4
	knock_no "pcp: the expired mapping no longer forwards" $s 40120

	knock_ok "pcp: the 3600 s mapping forwards" $s 40122
	e1=$(pcp_at $s 40123 40123 2 | sed -nE 's/.* epoch ([0-9]+) .*/\1/p')
	lab_miniupnpd_restart $s || tap_fail "$s: lab_miniupnpd_restart"
	e2=$(pcp_at $s 40123 40123 2 | sed -nE 's/.* epoch ([0-9]+) .*/\1/p')
	tap_check "pcp: after lab_miniupnpd_restart the epoch starts again ($e1, then $e2)" \
		test "${e2:-99}" -lt "${e1:-0}"
	tap_check "pcp: after the restart the mapping is gone" unmapped $s 40122
	knock_no "pcp: and no longer forwards" $s 40122
	lab_miniupnpd_stop $s
}

# test_all_three SITE: all three protocols at once on another NAT kind.
test_all_three() {
	local s=$1 host wan out p
	host=$(lab_host_ip "$s") wan=$(lab_wan_ip "$s")
	start "$s" || return   # all three
	tap_has "$s: upnpc maps 40130" "$(upnpc_at "$s" -a "$host" 40130 40130 UDP 60)" \
		"external $wan:40130 UDP is redirected to internal $host:40130"
	tap_has "$s: natpmpc maps 40131" "$(natpmpc_at "$s" -a 40131 40131 udp 60)" \
		"Mapped public port 40131 protocol UDP to local port 40131"
	tap_has "$s: PCP maps 40132" "$(pcp_at "$s" 40132 40132 60)" "result 0 lifetime 60"
	out=$(upnpc_at "$s" -l)
	tap_has "$s: upnpc -l lists the NAT-PMP mapping" "$out" "UDP 40131->$host:40131 'NAT-PMP 40131 udp'"
	tap_has "$s: and the PCP one" "$out" "UDP 40132->$host:40132 'PCP MAP "
	for p in 40130 40131 40132; do knock_ok "$s: mapping $p forwards through the ${LAB_KIND[$s]} NAT" "$s" $p; done
	lab_miniupnpd_restart "$s" || tap_fail "$s: lab_miniupnpd_restart"
	tap_is "$s: after lab_miniupnpd_restart no mapping is left" "$(lab_miniupnpd_mappings "$s")" ""
	if [[ ${LAB_KIND[$s]} == eim ]]; then
		# The echoes went out of those ports, so the full-cone NAT itself
		# keeps them open (eim_map) until its timeout: a whole reboot forgets.
		knock_ok "$s: the full-cone NAT's own mapping, made by the echoes, still lets 40130 in" "$s" 40130
		lab_flush_conntrack "$(lab_router "$s")"
	fi
	for p in 40130 40131 40132; do knock_no "$s: mapping $p no longer forwards" "$s" $p; done
	lab_miniupnpd_stop "$s"
	tap_check "$s: lab_miniupnpd_stop removes table lab_upnp" \
		not lab_exec "$(lab_router "$s")" nft list table inet lab_upnp
	tap_check "$s: and the lease file" test ! -e "$LAB_DIR/miniupnpd-$s.leases"
}

test_cgnat() {
	local s=cg out
	# Its STUN check waits for the filtered answers: ~10 s.
	if ! lab_miniupnpd $s; then
		tap_fail "cg: miniupnpd up behind the CGN"
		return
	fi
	tap_is "cg: behind the CGN miniupnpd's STUN check disables forwarding" "${LAB_UPNPD_FWD[$s]}" disabled
	tap_check "cg: and logs why" grep -q "is now behind restrictive or symmetric NAT with public IP address $(lab_wan_ip $s)" \
		"${LAB_UPNPD_LOG[$s]}"
	out=$(upnpc_at $s -a "$(lab_host_ip $s)" 40130 40130 UDP 60)
	tap_has "cg: UPnP gives the CGN's address" "$out" "ExternalIPAddress = $(lab_wan_ip $s)"
	tap_has "cg: and refuses the mapping (501)" "$out" "failed with code 501 (Action Failed)"
	local rc=0
	out=$(natpmpc_at $s -a 40131 40131 udp 60) || rc=$?
	tap_has "cg: NAT-PMP refuses it (network failure)" "$out" "failed : network failure"
	tap_check "cg: and natpmpc exits non-zero ($rc)" test "$rc" -ne 0
	tap_has "cg: PCP refuses it (NO_RESOURCES)" "$(pcp_at $s 40132 40132 60)" "result 8 "
	tap_is "cg: nothing was installed" "$(lab_miniupnpd_mappings $s)" ""
	lab_miniupnpd_stop $s
}

if ! build_lab; then
	tap_fail "lab builds" "$(tail -n 20 "$LAB_DIR"/*.log 2>/dev/null)"
	tap_done
fi
tap_ok "lab: port-restricted, symmetric, eim and cgnat sites, coturn on $STUN1 and $STUN2"
test_upnp
test_natpmp
test_pcp
test_all_three sym
test_all_three eim
test_cgnat
((TAP_FAILED == 0)) || lab_dump 2>&1 | sed 's/^/# /'
tap_done
