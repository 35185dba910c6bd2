#!/usr/bin/env bash
# AutoNAT served by a peer (issue 8: "or any peer with AutoNATService =
# true"). The lab: a rendezvous with one address (198.18.0.30, no
# AlternateListen: it cannot dial back), a public host srv whose agent has
# AutoNATService = true, host pr behind a port-restricted NAT and a public
# host pub2 whose agent has no rendezvous at all (only srv's Endpoint).
# Judged by logs, natctl show and packets (nftables counters):
#  - srv offers the service: natctl show names the port its dial-backs
#    leave from (its own address, not its ListenPort);
#  - pr: the rendezvous answers "unavailable", pr turns to srv and its
#    reflexive address becomes private, asked of peer srv; the dial-backs
#    reach pr's router and none gets through to pr;
#  - pub2 (no rendezvous): its address becomes public, asked of srv; the
#    dial-backs reach pub2's socket;
#  - srv itself has nobody to ask (its peers do not offer it): unknown, the
#    rendezvous has no second address;
#  - srv's dial-backs go nowhere but pr's NAT and pub2, and srv counts the
#    requests it answered.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/scripts/lab.sh"
. "$top/scripts/agentlab.sh"
. "$here/lib.sh"

tap_needs python3

lab_traps
RDV=198.18.0.30 PORT=41001
D=

# judge NS HOOK NAME RULE: a table inet aj with one named counter.
judge() {
	lab_exec "$1" nft -f - <<-NFT
	table inet aj {
		counter $3 {}
		chain c { type filter hook $2 priority -300; policy accept; $4 counter name $3; }
	}
	NFT
}
packets() {
	lab_exec "$1" nft list counter inet aj "$2" | sed -nE 's/.*packets ([0-9]+).*/\1/p'
}
# conf ROLE [RENDEZVOUS] [EXTRA]: DIR/ROLE/nt0.conf, tun mode, ListenPort
# PORT; its peers follow (peer_of).
conf() {
	mkdir -p "$D/$1"
	{
		printf '[Interface]\nPrivateKey = %s\nListenPort = %s\nAddress = %s/24\n' \
			"$(cat "$D/$1.key")" "$PORT" "$2"
		[[ -z $3 ]] || printf 'Rendezvous = %s:3478\nRendezvousKey = %s\n' "$RDV" "$(cat "$LAB_DIR/rdvb.pub")"
		[[ -z ${4:-} ]] || printf '%s\n' "$4"
	} > "$D/$1/nt0.conf"
}
# peer_of ROLE PEER ADDR [ENDPOINT]
peer_of() {
	printf '[Peer]\nPublicKey = %s\nAllowedIPs = %s/32\n' "$(cat "$D/$2.pub")" "$3" >> "$D/$1/nt0.conf"
	[[ -z ${4:-} ]] || printf 'Endpoint = %s\n' "$4" >> "$D/$1/nt0.conf"
}
reach_json() {
	NATAGENT_RUN_DIR=$D/run-$1 "$natctl" show nt0 --json | python3 -c '
import json, sys
r = {x["address"]: x for x in json.load(sys.stdin).get("reachability", [])}
print(json.dumps(r.get(sys.argv[1], {})))' "$2"
}

setup() {
	lab_internet && lab_server rdvb "$RDV" && lab_site pr port && lab_site srv public &&
		lab_site pub2 public || return 1
	D=$LAB_DIR/agents
	mkdir -p "$D" "$LAB_DIR/rdvb" "$LAB_DIR/run-rdvb"
	umask 077
	keys "$LAB_DIR" rdvb && keys "$D" pr srv pub2 || return 1
	printf '[Interface]\nPrivateKey = %s\n[Rendezvous]\nListen = %s:3478\n' \
		"$(cat "$LAB_DIR/rdvb.key")" "$RDV" > "$LAB_DIR/rdvb/rdvb0.conf"
	lab_spawn rdvb "$LAB_DIR/rdvb.log" env NATAGENT_RUN_DIR="$LAB_DIR/run-rdvb" \
		"$natagent" -d -B -c "$LAB_DIR/rdvb/rdvb0.conf" || return 1
	wait_for 10 grep -qs ': ready$' "$LAB_DIR/rdvb.log" || return 1
	SRV=$(lab_host_ip srv) PUB2=$(lab_host_ip pub2)
	conf srv 10.77.0.1 rdv "AutoNATService = true" && peer_of srv pr 10.77.0.2 &&
		peer_of srv pub2 10.77.0.3 || return 1
	conf pr 10.77.0.2 rdv && peer_of pr srv 10.77.0.1 || return 1
	conf pub2 10.77.0.3 "" && peer_of pub2 srv 10.77.0.1 "$SRV:$PORT" || return 1
	# Dial-backs: 36-byte STUN messages from srv's IP, from any port but its
	# ListenPort (the agents' port-mapping probes leave from others too).
	local db="udp length 44 @th,96,32 0x2112a442"
	judge srv output db_out "ip saddr $SRV udp sport != $PORT $db ip daddr != { $(lab_wan_ip pr), $PUB2 }" &&
		judge pr-gw prerouting at_gw "iifname \"wan\" ip saddr $SRV udp sport != $PORT $db" &&
		judge pr input at_pr "ip saddr $SRV udp sport != $PORT $db" &&
		judge pub2 input at_pub2 "ip saddr $SRV udp sport != $PORT udp dport $PORT $db" || return 1
	start "$D" srv srv && start "$D" pr pr && start "$D" pub2 pub2
}

if ! setup; then
	tap_diag "$(tail -n 5 "$LAB_DIR"/*.log "$D"/*.log 2>/dev/null)"
	tap_bail "a rendezvous without a second address, srv serving AutoNAT, pr and pub2"
fi
tap_ok "a rendezvous without a second address, srv serving AutoNAT, pr and pub2"

show "$D" srv > "$LAB_DIR/show-srv.txt"
tap_diag "$(grep -E 'autonat' "$LAB_DIR/show-srv.txt")"
tap_check "natctl show on srv: the service's dial-backs leave from a port other than its ListenPort" \
	eval 'grep -E "^  autonat service: dial-backs from 0\.0\.0\.0:[0-9]+," "$LAB_DIR/show-srv.txt" | grep -qv ":$PORT,"'

PR_SRFLX=$(lab_wan_ip pr):$PORT
tap_check "pr: the rendezvous cannot dial back; pr says peers are asked instead" \
	wait_for 20 grep -q "the rendezvous cannot check our reachability: .*AutoNATService = true are asked instead" "$D/pr.log"
tap_check "pr: its reflexive address $PR_SRFLX becomes private (0 of 3), asked of srv" \
	wait_for 30 grep -q "$PR_SRFLX is not reachable from outside (0 of 3 dial-backs arrived)" "$D/pr.log"
show "$D" pr > "$LAB_DIR/show-pr.txt"
tap_diag "$(grep -E 'reachability|endpoint' "$LAB_DIR/show-pr.txt")"
srv_name=$(cut -c1-8 "$D/srv.pub")
srv_re=$(sed 's/[+/.]/\\&/g' <<<"$srv_name")   # a key's base64 in a regex
tap_check "natctl show on pr: $PR_SRFLX private, asked of peer $srv_name" \
	grep -qE "^  reachability: $PR_SRFLX private \(0 of 3 dial-backs arrived\), checked .*, asked of peer $srv_re" "$LAB_DIR/show-pr.txt"
tap_check "pr's --json: via peer:$srv_name" \
	eval '[[ $(reach_json pr "$PR_SRFLX") == *"\"via\": \"peer:$srv_name\""* ]]'
gw=$(packets pr-gw at_gw) host=$(packets pr at_pr)
tap_diag "srv's dial-backs toward pr: $gw at pr's router, $host at pr"
tap_check "by packets: at least 3 of srv's dial-backs reached pr's router, none reached pr" \
	test "$gw" -ge 3 -a "$host" = 0

PUB2_EP=$PUB2:$PORT
tap_check "pub2 (no rendezvous): $PUB2_EP becomes publicly reachable (3 of 3), asked of srv" \
	wait_for 30 grep -q "$PUB2_EP is publicly reachable (3 of 3 dial-backs arrived)" "$D/pub2.log"
tap_check "natctl show on pub2: public, asked of peer $srv_name" \
	eval 'show "$D" pub2 | grep -qE "^  reachability: $PUB2_EP public \(3 of 3 dial-backs arrived\), checked .*, asked of peer $srv_re"'
tap_check "by packets: at least 3 of srv's dial-backs reached pub2's socket" \
	test "$(packets pub2 at_pub2)" -ge 3

SRV_EP=$SRV:$PORT
tap_check "srv: nobody can check it (the rendezvous cannot, its peers do not offer it): unknown" \
	eval 'show "$D" srv | grep -qE "^  reachability: $SRV_EP unknown, the rendezvous has no second address to dial from"'
tap_check "by packets: srv's dial-backs went nowhere but pr's NAT and pub2" \
	test "$(packets srv db_out)" = 0
show "$D" srv > "$LAB_DIR/show-srv.txt"
tap_diag "$(grep -E 'autonat' "$LAB_DIR/show-srv.txt")"
tap_check "srv counted the requests it answered (at least 2: one from each peer)" \
	eval '[[ $(NATAGENT_RUN_DIR=$D/run-srv "$natctl" show nt0 --json | python3 -c "import json,sys; print(json.load(sys.stdin)[\"autonat_service_requests\"])") -ge 2 ]]'
tap_check "srv's log names each request and what it did" \
	eval 'grep -q "asked to be dialed back: .*dialed" "$D/srv.log"'
tap_done
