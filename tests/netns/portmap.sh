#!/usr/bin/env bash
# Port mapping against the real miniupnpd (Debian's, nftables backend) on
# the lab's routers, natagent with its default PortMapping (all three
# protocols tried at once):
#  - three port-restricted sites, each router serving one protocol alone
#    (UPnP IGD, PCP, NAT-PMP): natagent gets a mapping by that protocol,
#    natctl show names it, the router's own table has it (upnpc -l for UPnP,
#    the nftables DNAT miniupnpd installed for all), and a STUN request from
#    a host on the internet to the external port is answered by the agent;
#  - with 20 s leases, the mapping is renewed before it expires: it still
#    forwards after 30 s, and natctl show says it was renewed since;
#  - the router restarts miniupnpd (its mappings gone): natagent maps again
#    by itself;
#  - natagent exits: every mapping is gone from the routers;
#  - a router serving all three (one table): the protocol that won still
#    forwards after the others are stopped (their grant was the same entry);
#  - two peers behind port-restricted routers with UPnP connect directly,
#    the pair that won being the peer's mapped port, so no synchronized
#    punch was needed; judged by natctl and by the rendezvous's byte count;
#  - AutoNAT verifies the mapped address from outside; when the mapping goes
#    from the router without natagent's knowing, AutoNAT's next check finds
#    it and natagent maps again.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/scripts/lab.sh"
. "$top/scripts/agentlab.sh"
. "$here/lib.sh"

tap_needs miniupnpd upnpc natpmpc turnserver python3
lab_traps

RDV=198.18.0.10 RDV2=198.18.0.11 STUN1=198.18.0.20 STUN2=198.18.0.21
PORT=41500 LEASE=20
PROTOS=(upnp pcp natpmp)
declare -A SITE=([upnp]=u [pcp]=p [natpmp]=n)

# solo_conf ROLE: a tun-mode agent with no peer it can reach (the mapping
# needs none), its lease short.
solo_conf() {
	mkdir -p "$LAB_DIR/solo/$1"
	keys "$LAB_DIR/solo" "$1" "$1-peer" || return 1
	cat > "$LAB_DIR/solo/$1/nt0.conf" <<-CONF
	[Interface]
	PrivateKey = $(cat "$LAB_DIR/solo/$1.key")
	ListenPort = $PORT
	Address = 10.77.9.1/24
	PortMappingLease = $LEASE
	[Peer]
	PublicKey = $(cat "$LAB_DIR/solo/$1-peer.pub")
	AllowedIPs = 10.77.9.2/32
	CONF
}

setup() {
	lab_internet && lab_server rdv "$RDV" "$RDV2" && lab_server stun "$STUN1" "$STUN2" &&
		lab_server probe 198.18.0.30 || return 1
	lab_coturn stun || return 1
	for p in "${PROTOS[@]}"; do
		lab_site "${SITE[$p]}" port || return 1
		lab_miniupnpd "${SITE[$p]}" "$p" || return 1
	done
	lab_site x port && lab_site y port && lab_miniupnpd x upnp && lab_miniupnpd y upnp &&
		lab_site m port && lab_miniupnpd m upnp pcp natpmp
}

if ! setup; then
	tap_fail "the lab: three routers with one port-mapping protocol each, two with UPnP, one with all three" \
		"$(tail -n 5 "$LAB_DIR"/*.log 2>/dev/null)"
	tap_done
fi
tap_ok "the lab: three routers with one port-mapping protocol each, two with UPnP, one with all three"

# mapped_line ROLE PROTO: natctl show's "port mapping: PROTO ... -> ..." line.
mapped_line() {
	show "$LAB_DIR/solo" "$1" | grep -E "^  port mapping: $2 [0-9.]+:$PORT -> " | head -n1
}

# ext_of LINE: the external address of a mapped line.
ext_of() {
	sed -nE 's/.* -> ([0-9.]+:[0-9]+),.*/\1/p' <<<"$1"
}

# answers EXT SRCPORT: a STUN Binding request from the internet host probe to
# EXT is answered (by the agent, through the mapping).
answers() {
	lab_exec probe python3 "$here/stun_probe.py" bind "${1%:*}" "${1##*:}" "$2" |
		grep -q "^mapped 198.18.0.30 $2"
}

# in_table SITE EXTPORT [INTPORT]: miniupnpd's DNAT for EXTPORT to the
# host's INTPORT (default PORT).
in_table() {
	lab_miniupnpd_mappings "$1" | grep -q "^udp $2 $(lab_host_ip "$1"):${3:-$PORT}$"
}

# no_mapping SITE: miniupnpd forwards nothing to the host's PORT.
no_mapping() {
	! lab_miniupnpd_mappings "$1" | grep -q ":$PORT$"
}

# both_direct DIR: natctl on a and b both report a direct path.
both_direct() {
	[[ $(path_of "$1" a) == direct && $(path_of "$1" b) == direct ]]
}

for p in "${PROTOS[@]}"; do
	solo_conf "$p" && agent_spawn "$LAB_DIR/solo" "${SITE[$p]}" "$p" -d -B
done
declare -A EXT=()
src=42000
for p in "${PROTOS[@]}"; do
	s=${SITE[$p]}
	# PCP silent on a NAT-PMP-only router: NAT-PMP after half of 9 s.
	wait_for 15 sh -c "NATAGENT_RUN_DIR=$LAB_DIR/solo/run-$p $natctl show nt0 |
		grep -qE '^  port mapping: $p [0-9.]+:$PORT -> '"
	line=$(mapped_line "$p" "$p")
	tap_diag "$p: $line"
	tap_check "$p alone: natagent maps its port by $p, natctl show says so" test -n "$line"
	EXT[$p]=$(ext_of "$line")
	tap_is "$p: the external address is the router's" "${EXT[$p]%:*}" "$(lab_wan_ip "$s")"
	tap_check "$p: the router's own table holds the mapping" in_table "$s" "${EXT[$p]##*:}"
	src=$((src + 1))
	tap_check "$p: a STUN request from the internet to ${EXT[$p]} reaches the agent" \
		answers "${EXT[$p]}" "$src"
done
out=$(lab_exec "${SITE[upnp]}" upnpc -u "$(lab_miniupnpd_url "${SITE[upnp]}")" -l 2>&1)
tap_check "upnp: upnpc -l on the LAN lists it" \
	grep -qE "UDP +${EXT[upnp]##*:}->$(lab_host_ip "${SITE[upnp]}"):$PORT +'natagent nt0'" <<<"$out"
out=$(lab_exec "${SITE[natpmp]}" natpmpc 2>&1)
tap_check "natpmp: natpmpc on the LAN sees the same public address" \
	grep -q "Public IP address : ${EXT[natpmp]%:*}" <<<"$out"

# Leases of 20 s: renewed at half. After 30 s each still forwards, and
# natctl show says it was renewed within the lease.
sleep 30
for p in "${PROTOS[@]}"; do
	line=$(mapped_line "$p" "$p")
	src=$((src + 1))
	tap_check "$p: after 30 s (lease $LEASE s) the mapping still forwards" answers "${EXT[$p]}" "$src"
	tap_check "$p: renewed within its lease" \
		grep -qE "lease $LEASE seconds \([0-9]+ seconds? left\), renewed ([0-9]|1[0-9]) seconds? ago" \
		<<<"$line"
	tap_diag "$p: $line"
done

# A router restart loses every mapping: each agent must notice and map again.
for p in "${PROTOS[@]}"; do
	lab_miniupnpd_restart "${SITE[$p]}" || tap_diag "cannot restart miniupnpd on ${SITE[$p]}"
done
for p in "${PROTOS[@]}"; do
	s=${SITE[$p]}
	tap_check "$p: after miniupnpd restarted (mappings lost), natagent maps again" \
		wait_for 25 in_table "$s" "${EXT[$p]##*:}"
	tap_check "$p: its log says the mapping was lost and mapped again" \
		grep -qE "port mapping: $p lost .* mapping again|port mapping: $p maps" "$LAB_DIR/solo/$p.log"
done

for p in "${PROTOS[@]}"; do
	pid=PID_$p
	stop "${!pid}"
done
for p in "${PROTOS[@]}"; do
	tap_check "$p: after natagent exits the router holds no mapping for it" no_mapping "${SITE[$p]}"
	tap_check "$p: its log says it deleted the mapping" \
		grep -q "port mapping: deleted the $p mapping" "$LAB_DIR/solo/$p.log"
	((TAP_RC == 0)) || tap_diag "$(grep -E 'port mapping|stopping' "$LAB_DIR/solo/$p.log" | tail -n 6)"
done

# A router serving all three protocols from one table (miniupnpd): natagent
# asks by all at once, and the router grants the same entry to each that
# gets through. The one kept must still forward once the others are
# stopped: stopping them must not delete that shared entry.
solo_conf all && agent_spawn "$LAB_DIR/solo" m all -d -B
settled() {  # one protocol mapped, the others idle (none still trying)
	local out
	out=$(show "$LAB_DIR/solo" all)
	[[ $(grep -cE "^  port mapping: [a-z]+ [0-9.]+:$PORT -> " <<<"$out") == 1 &&
		$(grep -cE "^  port mapping: [a-z]+: idle" <<<"$out") == 2 ]]
}
if wait_for 15 settled; then
	line=$(show "$LAB_DIR/solo" all | grep -E "^  port mapping: [a-z]+ [0-9.]+:$PORT -> " | head -n1)
	won=$(sed -nE 's/^  port mapping: ([a-z]+) .*/\1/p' <<<"$line") ext=$(ext_of "$line")
	tap_diag "all three: $won won: $line"
	src=$((src + 1))
	tap_check "all three: once the others are stopped, the router still holds $won's mapping" \
		in_table m "${ext##*:}"
	tap_check "all three: and a STUN request from the internet to $ext still reaches the agent" \
		answers "$ext" "$src"
else
	tap_fail "all three: one protocol mapped, the other two idle" \
		"$(show "$LAB_DIR/solo" all | grep 'port mapping')"
fi
stop "$PID_all"
tap_check "all three: after natagent exits the router holds no mapping for it" no_mapping m

# Two peers behind port-restricted routers with UPnP: each side's CONNECT
# offers its mapped port, which the other's first check reaches.
rdv_judge && rdv_start -d || tap_diag "rendezvous did not start: $(tail -n 3 "$LAB_DIR/rdv.log")"
pair_conf "$LAB_DIR/pair" 41600
start "$LAB_DIR/pair" x a
wait_for 10 grep -q "port mapping: upnp maps" "$LAB_DIR/pair/a.log"
start "$LAB_DIR/pair" y b
wait_for 10 grep -q "port mapping: upnp maps" "$LAB_DIR/pair/b.log"
tap_check "mapped pair: ping through the tunnel" wait_for 15 lab_exec x ping -c1 -W1 10.77.0.2
tap_check "mapped pair: both sides report a direct path" \
	wait_for 10 both_direct "$LAB_DIR/pair"
before=$(rdv_bytes)
xfer x y 10.77.0.2 1048576 0 20 "$LAB_DIR/pair-xfer"
tap_check "mapped pair: 1 MiB TCP transfer through the tunnel, every byte" \
	grep -q "sent 1048576, received 1048576 in" "$LAB_DIR/pair-xfer-send.log"
relayed=$(( $(rdv_bytes) - before ))
tap_check "mapped pair: the rendezvous carried under 5 % of it ($relayed bytes)" \
	test "$relayed" -lt 52428
sa=$(show "$LAB_DIR/pair" a) sb=$(show "$LAB_DIR/pair" b)
tap_diag "$(grep -E 'pair:|verdict:|port mapping:' <<<"$sa" | sed 's/^/a: /')"
tap_diag "$(grep -E 'pair:|verdict:|port mapping:' <<<"$sb" | sed 's/^/b: /')"
tap_check "mapped pair: a side's winning pair is the peer's mapped port, no synchronized punch needed" \
	grep -qE "(mapped\): succeeded|no synchronized punch needed)" <<<"$sa$sb"
# AutoNAT through the rendezvous: the mapped address is reachable from its
# second address (the router forwards it), so it is verified.
verified() {
	show "$LAB_DIR/pair" a | grep -qE "^  port mapping: upnp .* -> $(lab_wan_ip x):41600, .*verified from outside"
}
tap_check "AutoNAT: the mapped address is public, the mapping verified from outside" wait_for 30 verified
tap_diag "$(show "$LAB_DIR/pair" a | grep -E 'reachability|port mapping: upnp')"

# A mapping gone without a word to natagent (deleted on the router, through
# miniupnpd itself so that its state and the kernel's agree; the NAT state of
# earlier dial-backs forgotten too): its lease still looks granted, only
# AutoNAT can tell. Its next check (every few minutes, or on an address
# change, the trigger here) finds the dial-backs no longer get in, and
# natagent maps again.
wipe_x() {
	lab_exec x upnpc -u "$(lab_miniupnpd_url x)" -d 41600 UDP >/dev/null 2>&1
	lab_exec x-gw conntrack -D -p udp -s "$RDV2" >/dev/null 2>&1 || true
	! in_table x 41600 41600
}
remapped_line() {
	show "$LAB_DIR/pair" a | grep -qE "^  port mapping: upnp .*mapped again 1 time,"
}
if wipe_x && lab_exec x ip addr add "10.$(lab_host_ip x | cut -d. -f2).0.77/24" dev eth0; then
	tap_check "silent wipe: AutoNAT notices nothing gets through and natagent maps again" \
		wait_for 40 grep -q "port mapping: upnp maps $(lab_wan_ip x):41600, but nothing from outside gets through; mapping again" "$LAB_DIR/pair/a.log"
	tap_check "silent wipe: the router's table holds the mapping again" wait_for 10 in_table x 41600 41600
	((TAP_RC == 0)) || tap_diag "$(lab_exec x-gw nft list table inet lab_upnp; lab_exec x upnpc -u "$(lab_miniupnpd_url x)" -l 2>&1 | tail -4)"
	tap_check "silent wipe: natctl show says mapped again, and verified from outside again" \
		wait_for 30 eval 'remapped_line && verified'
	tap_check "silent wipe: the tunnel still carries traffic" lab_exec x ping -c1 -W2 10.77.0.2
else
	tap_fail "silent wipe: delete the mapping on x's router and add an address on x" \
		"$(lab_miniupnpd_mappings x)"
fi
tap_diag "$(show "$LAB_DIR/pair" a | grep -E 'reachability|port mapping: upnp')"
stop "$PID_a" "$PID_b"
tap_done
