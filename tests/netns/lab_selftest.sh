#!/usr/bin/env bash
# Proves the namespace lab (scripts/lab.sh) right with third-party tools only:
# the real coturn as an RFC 5780 STUN server on two addresses, Debian's classic
# RFC 3489 `stun` client classifying every site kind, ping, and a small python
# UDP probe (udp_probe.py) that checks mapping and filtering by hand. Then the
# helpers: conntrack timeouts, loss, changing a NAT at run time, cleanup.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/../../scripts/lab.sh"

[[ $(id -u) == 0 ]] || tap_skip_all "needs root"
for tool in turnserver stun nft conntrack ping ss /usr/bin/python3; do
	command -v "$tool" >/dev/null || tap_skip_all "$tool not installed"
done

lab_traps

KINDS="public eim addr port symmetric cgnat"
STUN1=198.18.0.10 STUN2=198.18.0.11 OUTSIDE=198.18.0.20 RPORT=4000
PY=/usr/bin/python3   # the system's python, not a PATH shim

# What the classic stun client must say (its "Primary:" line without the port
# and hairpin remarks), and what the hand probe must see: which of the
# reflector's three answers (from the same ip:port, from another port, from the
# other address) get through.
declare -A WANT_STUN=(
	[public]="Open"
	[eim]="Independent Mapping, Independent Filter"
	[addr]="Independent Mapping, Address Dependent Filter"
	[port]="Independent Mapping, Port Dependent Filter"
	[symmetric]="Dependent Mapping"
	[cgnat]="Independent Mapping, Port Dependent Filter"   # both tiers filter by port
)
declare -A WANT_RECV=(
	[public]="base port addr" [eim]="base port addr" [addr]="base port"
	[port]="base" [symmetric]="base" [cgnat]="base"
)

# not CMD...: succeeds when CMD fails (for tap_check).
# shellcheck disable=SC2317  # called through tap_check
not() { ! "$@"; }

build_lab() {
	lab_internet
	lab_server stun "$STUN1" "$STUN2"
	lab_server outside "$OUTSIDE"
	local k
	for k in $KINDS; do lab_site "$k" "$k"; done   # each site is named after its kind
	lab_coturn stun
	lab_spawn stun "$LAB_DIR/reflector.log" "$PY" "$here/udp_probe.py" reflect "$STUN1" "$STUN2" "$RPORT" 100
	wait_for 10 lab_udp_bound stun "$STUN2" "$RPORT"
}

# stun_type SITE: run the stun client on SITE's host; sets STUN_TYPE to its
# classification without the remarks (e.g. "Independent Mapping, Port
# Dependent Filter") and STUN_LINE to the whole "Primary:" line.
stun_type() {
	local out
	# Its exit status is the NAT type code, not success or failure.
	out=$(timeout 20 ip netns exec "$(lab_ns "$1")" stun "$STUN1" 2>&1) || true
	STUN_LINE=$(grep -m1 '^Primary:' <<<"$out" | tr -s '\t ' ' ') || STUN_LINE="(no Primary line) $out"
	STUN_TYPE=$(sed -E 's/^Primary: //; s/ +$//; s/, (no|will) hairpin$//;
		s/, (preserves ports|random port)$//' <<<"$STUN_LINE")
}

test_stun_types() {
	local k
	for k in $KINDS; do
		stun_type "$k"
		tap_diag "$k: $STUN_LINE"
		tap_is "$k: stun client classifies the site as '${WANT_STUN[$k]}'" "$STUN_TYPE" "${WANT_STUN[$k]}"
	done
}

# outer_wan SITE: the internet address of the site's outermost router.
outer_wan() { echo "198.18.${LAB_IDX[$1]}.1"; }

test_reachability() {
	local k ip
	for k in $KINDS; do
		tap_check "$k: LAN host pings both STUN addresses" \
			lab_exec "$k" sh -c "ping -c1 -W2 $STUN1 && ping -c1 -W2 $STUN2"
	done
	tap_check "public: an internet host pings the public host" \
		lab_exec outside ping -c1 -W2 "$(lab_host_ip public)"
	# Even a host that routes the LAN at the router gets nothing in unasked.
	for k in eim addr port symmetric cgnat; do
		ip=$(lab_host_ip "$k")
		lab_exec outside ip route add "$ip/32" via "$(outer_wan "$k")"
		tap_check "$k: an internet host routing at the router cannot ping the LAN host" \
			not lab_exec outside ping -c1 -W0.5 "$ip"
		lab_exec outside ip route del "$ip/32"
	done
	lab_exec outside ip route add 100.64.0.0/10 via "$(outer_wan cgnat)"
	tap_check "cgnat: an internet host cannot ping the home router behind the CGN" \
		not lab_exec outside ping -c1 -W0.5 "100.64.${LAB_IDX[cgnat]}.2"
	lab_exec outside ip route del 100.64.0.0/10
}

# probe SITE: run udp_probe.py on SITE's host; sets P_local P_recv P_map1
# P_map2 P_maplocal from its output.
probe() {
	local out key val
	P_local='' P_recv='' P_map1='' P_map2='' P_maplocal=''
	out=$(lab_exec "$1" timeout 20 "$PY" "$here/udp_probe.py" probe "$STUN1" "$STUN2" "$RPORT") || true
	while read -r key val; do
		case $key in
		local|recv|map1|map2|maplocal) printf -v "P_$key" '%s' "$val" ;;
		esac
	done <<<"$out"
}

test_probe() {
	local k wan
	for k in $KINDS; do
		probe "$k"
		tap_diag "$k: socket $P_local got answers from: ${P_recv:-none}; socket $P_maplocal mapped to $P_map1 and $P_map2"
		tap_is "$k: by hand, answers that pass the filter" "$P_recv" "${WANT_RECV[$k]}"
		case $k in
		public)
			tap_is "$k: by hand, no translation" "$P_map1 $P_map2" "$P_maplocal $P_maplocal" ;;
		symmetric)
			wan=$(lab_wan_ip "$k")
			tap_check "$k: by hand, a new mapping per destination ($P_map1, $P_map2)" \
				test "${P_map1%:*} ${P_map2%:*}" = "$wan $wan" -a "$P_map1" != "$P_map2" ;;
		*)
			# One mapping for both destinations, on the WAN address, same port.
			tap_is "$k: by hand, one port-preserving mapping for two destinations" \
				"$P_map1 $P_map2" "$(lab_wan_ip "$k"):${P_maplocal#*:} $(lab_wan_ip "$k"):${P_maplocal#*:}" ;;
		esac
	done
}

# send_from SITE PORT: one "map" datagram from SITE's host, source port PORT,
# to the reflector; succeeds when the answer comes back.
send_from() {
	lab_exec "$1" timeout 5 "$PY" -c "
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('', $2)); s.settimeout(2); s.sendto(b'map', ('$STUN1', $RPORT)); s.recv(100)"
}

# (No `nft ... | grep -q` under pipefail: grep quitting early can SIGPIPE nft.)
map_has() { [[ $(lab_exec "$1" nft list map ip lab_nat eim_map) == *" $2 timeout "* ]]; }
ct_has() { [[ -n $(lab_exec "$1" conntrack -L -p udp --sport "$2" 2>/dev/null) ]]; }
# shellcheck disable=SC2317  # called through wait_for
gone() { ! map_has "$1" "$2" && ! ct_has "$1" "$2"; }

test_conntrack_timeout() {
	local t0 t1 before after
	ct_timeouts() {   # eim-gw's two values, port-gw's, the caller's namespace's
		echo "$(lab_exec eim-gw sysctl -n net.netfilter.nf_conntrack_udp_timeout)" \
			"$(lab_exec eim-gw sysctl -n net.netfilter.nf_conntrack_udp_timeout_stream)" \
			"$(lab_exec port-gw sysctl -n net.netfilter.nf_conntrack_udp_timeout)" \
			"$(sysctl -n net.netfilter.nf_conntrack_udp_timeout)"
	}
	before=$(ct_timeouts)
	lab_conntrack_timeout eim-gw 2
	after=$(ct_timeouts)
	tap_is "conntrack timeouts are per namespace (eim-gw 2 s; port-gw, caller untouched)" \
		"$after" "2 2 $(cut -d' ' -f3- <<<"$before")"
	send_from eim 23456
	if map_has eim-gw 23456 && ct_has eim-gw 23456; then
		t0=${EPOCHREALTIME//[!0-9]/}
		if wait_for 10 gone eim-gw 23456; then
			t1=${EPOCHREALTIME//[!0-9]/}
			# Expiry needs the 2 s to pass, then at most a GC pass.
			tap_check "eim: an idle mapping expires after the 2 s timeout ($(((t1 - t0) / 1000)) ms)" \
				test $((t1 - t0)) -ge 1500000 -a $((t1 - t0)) -le 8000000
		else
			tap_fail "eim: an idle mapping expires after the 2 s timeout" "$(lab_exec eim-gw nft list map ip lab_nat eim_map)"
		fi
	else
		tap_fail "eim: an idle mapping expires after the 2 s timeout" \
			"no mapping for port 23456 was made: $(lab_exec eim-gw nft list map ip lab_nat eim_map; lab_exec eim-gw conntrack -L 2>&1)"
	fi
}

# loss_pct SITE: packet loss in % of 100 quick pings to the STUN server.
loss_pct() {
	lab_exec "$1" ping -q -c 100 -i 0.005 -W 1 "$STUN1" 2>/dev/null |
		sed -nE 's/.* ([0-9.]+)% packet loss.*/\1/p' | cut -d. -f1
}

test_loss() {
	lab_loss port eth0 100
	tap_check "lab_loss 100%: nothing gets through" not lab_exec port ping -c1 -W0.5 "$STUN1"
	lab_loss port eth0 30
	local pct
	pct=$(loss_pct port)
	# 30 % each way: a round trip is lost with 1 - 0.7^2 = 51 %.
	tap_check "lab_loss 30% both ways: ${pct}% of 100 pings lost (expected about 51%)" \
		test "${pct:-0}" -ge 25 -a "${pct:-0}" -le 80
	lab_loss port eth0 0
	tap_check "lab_loss 0%: the link is clean again" lab_exec port ping -c1 -W2 "$STUN1"
}

test_set_nat() {
	lab_set_nat port-gw eim
	lab_flush_conntrack port-gw
	stun_type port
	tap_is "lab_set_nat port-gw eim: stun now sees full cone" "$STUN_TYPE" "${WANT_STUN[eim]}"
	lab_set_nat port symmetric   # a site name means its gw
	lab_flush_conntrack port-gw
	stun_type port
	tap_is "lab_set_nat port symmetric: stun now sees symmetric" "$STUN_TYPE" "${WANT_STUN[symmetric]}"
	lab_set_nat port-gw port
	lab_flush_conntrack port-gw
	tap_check "lab_flush_conntrack empties conntrack and the maps" \
		test -z "$(lab_exec port-gw conntrack -L 2>/dev/null)"
}

test_names() {
	local k bad=
	for k in "${!LAB_NSMAP[@]}"; do
		[[ ${LAB_NSMAP[$k]} == "$k-$LAB_ID" && -e /run/netns/${LAB_NSMAP[$k]} ]] || bad+=" $k"
	done
	tap_is "all ${#LAB_NSMAP[@]} namespaces carry this run's suffix -$LAB_ID" "${bad:-none}" none
}

# A second lab in a child shell, killed with TERM mid-run: its trap must remove
# its namespaces and stop the process it spawned. The child writes its suffix
# and its process's PID to a file once it is built.
test_cleanup_on_term() {
	local info="$LAB_DIR/child.info" child id='' sleeper=
	bash -c '
		. "$1/../../scripts/lab.sh"
		trap lab_cleanup EXIT; trap "lab_cleanup; exit 143" TERM
		lab_internet; lab_site x port
		lab_spawn x /dev/null sleep 60
		echo "$LAB_ID $LAB_LAST_PID" > "$2.tmp"; mv "$2.tmp" "$2"
		wait_for 30 false' _ "$here" "$info" &
	child=$!
	if ! wait_for 10 test -s "$info"; then
		kill -KILL "$child" 2>/dev/null || true
		tap_fail "lab_cleanup on TERM removes a run's namespaces and processes" "child lab never came up"
		return
	fi
	read -r id sleeper <"$info"
	kill -TERM "$child"
	wait "$child" || true
	local left
	left=$(ip netns list | grep -c -- "-$id\b" || true)
	tap_check "lab_cleanup on TERM removes a run's namespaces ($left left) and processes" \
		test "$left" = 0 -a ! -e "/proc/$sleeper"
}

build_lab
tap_ok "lab built: internet, 2 servers, sites: $KINDS; coturn up on $STUN1 and $STUN2"
test_names
test_reachability
test_stun_types
test_probe
test_conntrack_timeout
test_loss
test_set_nat
test_cleanup_on_term
tap_done
