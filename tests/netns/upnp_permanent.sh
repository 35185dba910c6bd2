#!/usr/bin/env bash
# UPnP against a router that grants only permanent leases (error 725,
# OnlyPermanentLeasesSupported). Debian's miniupnpd cannot be made to answer
# so; tests/netns/igd_permanent.py stands in for such a router on a
# port-restricted lab site, answering SSDP and SOAP and installing what it
# grants as real nftables DNATs. natagent, asking for its 2 h lease:
#  - is refused with 725, asks again for a permanent mapping and gets it;
#    natctl show says "lease permanent", and a STUN request from the internet
#    to the external port reaches the agent through it;
#  - deletes that mapping when it exits, so that no permanent rule is left
#    on the router: the router's table is empty, nothing gets in;
#  - killed (no chance to delete), then started again: maps the same port
#    again (the router's entry is the same client's), and deletes it on a
#    clean exit.
# shellcheck source-path=SCRIPTDIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/scripts/lab.sh"
. "$top/scripts/agentlab.sh"
. "$here/lib.sh"

tap_needs nft python3 conntrack
lab_traps

PORT=41700 HTTP=5431

setup() {
	lab_internet && lab_server probe 198.18.0.30 && lab_site h port || return 1
	IGD_LOG=$LAB_DIR/igd.log
	lab_spawn h-gw "$IGD_LOG" python3 "$here/igd_permanent.py" "10.${LAB_IDX[h]}.0.1" \
		"$(lab_wan_ip h)" wan "$HTTP" || return 1
	wait_for 5 grep -q '^ready' "$IGD_LOG" || return 1
	mkdir -p "$LAB_DIR/a"
	keys "$LAB_DIR" a peer || return 1
	cat > "$LAB_DIR/a/nt0.conf" <<-CONF
	[Interface]
	PrivateKey = $(cat "$LAB_DIR/a.key")
	ListenPort = $PORT
	Address = 10.77.9.1/24
	PortMapping = upnp
	[Peer]
	PublicKey = $(cat "$LAB_DIR/peer.pub")
	AllowedIPs = 10.77.9.2/32
	CONF
}

if ! setup; then
	tap_fail "the lab: a port-restricted router whose IGD grants only permanent leases" \
		"$(tail -n 5 "$LAB_DIR"/*.log 2>/dev/null)"
	tap_done
fi
tap_ok "the lab: a port-restricted router whose IGD grants only permanent leases"

WAN=$(lab_wan_ip h) HOST=$(lab_host_ip h)

# answers SRCPORT: a STUN Binding request from the internet host probe to
# WAN:PORT is answered by the agent. Each call takes a source port of its
# own: the router keeps the NAT state of a remote it saw before.
answers() {
	lab_exec probe python3 "$here/stun_probe.py" bind "$WAN" "$PORT" "$1" |
		grep -q "^mapped 198.18.0.30 $1"
}
# dnat_held: the router's nftables forwards WAN:PORT to the agent.
dnat_held() {
	lab_exec h-gw nft list table ip lab_igdperm 2>/dev/null | grep -qE "dport $PORT dnat (ip )?to $HOST:$PORT"
}
permanent_line() {
	show "$LAB_DIR" a | grep -qE "^  port mapping: upnp $HOST:$PORT -> $WAN:$PORT, lease permanent"
}

start "$LAB_DIR" h a
tap_check "natagent maps its port by UPnP, natctl show says the lease is permanent" \
	wait_for 15 permanent_line
tap_diag "$(show "$LAB_DIR" a | grep 'port mapping')"
tap_check "the router refused the 2 h lease with 725, then granted a permanent one" \
	grep -qzE "AddPortMapping UDP $PORT -> $HOST:$PORT lease 7200: 725
AddPortMapping UDP $PORT -> $HOST:$PORT lease 0: ok" "$IGD_LOG"
((TAP_RC == 0)) || tap_diag "$(cat "$IGD_LOG")"
tap_check "natagent's log names the permanent lease" \
	grep -q "port mapping: upnp maps $WAN:$PORT -> $HOST:$PORT, lease permanent" "$LAB_DIR/a.log"
tap_check "the router's nftables forwards the external port to the agent" dnat_held
tap_check "a STUN request from the internet to $WAN:$PORT reaches the agent" answers 43001

stop "$PID_a"
tap_check "natagent exits: it deleted the permanent mapping" \
	grep -q "^DeletePortMapping UDP $PORT: ok" "$IGD_LOG"
tap_check "... the router forwards nothing to the agent any more" eval '! dnat_held'
tap_check "... and a STUN request from the internet no longer gets in" eval '! answers 43002'

# Killed, natagent cannot delete: the permanent mapping stays. Started
# again, it must get its port back (not a conflict, not a second port).
start "$LAB_DIR" h a
wait_for 15 permanent_line
kill -KILL "$PID_a"; wait "$PID_a" 2>/dev/null
tap_check "killed: the permanent mapping is left on the router" dnat_held
adds=$(grep -c "lease 0: ok" "$IGD_LOG")
start "$LAB_DIR" h a
tap_check "started again: natagent maps the same external port again" wait_for 15 permanent_line
tap_is "... with one more grant from the router, no conflict" \
	"$(grep -c "lease 0: ok" "$IGD_LOG"):$(grep -c ': 718$' "$IGD_LOG")" "$((adds + 1)):0"
tap_check "... and it forwards" answers 43003
stop "$PID_a"
tap_check "a clean exit deletes it" eval '! dnat_held'
tap_diag "$(cat "$IGD_LOG")"
tap_done
