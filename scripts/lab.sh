# shellcheck shell=bash
# natagent's network-namespace lab: a simulated internet, servers on it, and home
# sites behind NAT routers of each behaviour. Sourced by tests, never run:
#
#   . scripts/lab.sh
#   trap lab_cleanup EXIT; trap 'lab_cleanup; exit 130' INT; trap 'lab_cleanup; exit 143' TERM
#   lab_internet
#   lab_server stun 198.18.0.10 198.18.0.11
#   lab_site a eim
#   lab_exec a ping -c1 198.18.0.10
#
# Topology (N = the site's index, 1, 2, ... in creation order):
#
#   [server]eth0 --- v<M>[inet: br0]s<N> --- wan[<site>-gw]lan --- eth0[<site>]
#   198.18.x.y/15            bridge          198.18.N.1   10.N.0.1    10.N.0.2
#
#   public site:  gw lan 198.19.N.1/24, host 198.19.N.2; the gw answers ARP for it
#                 on the bridge (proxy ARP) and routes without NAT.
#   cgnat site:   s<N> --- wan[<site>-cgn]lan --- wan[<site>-gw]lan --- eth0[<site>]
#                        198.18.N.1  100.64.N.1  100.64.N.2  10.N.0.1     10.N.0.2
#
# Logical names (what every function takes): the internet is "inet", a server is
# its NAME, a site's LAN host is the site NAME, its router NAME-gw and, for cgnat,
# the carrier router NAME-cgn. Real namespace names carry a per-run random suffix
# (lab_ns prints them), so parallel or leftover runs never collide. Every
# interface lives inside a lab namespace; nothing is created in the caller's.
# Server addresses are the caller's choice; keep them in 198.18.0.0/24, which no
# site uses.
#
# NAT kinds (lab_site, lab_set_nat); how each is built is told at _lab_nat_ruleset:
#   public     no NAT, the host has an internet address            (stun: Open)
#   eim        endpoint-independent mapping and filtering, "full cone"
#   addr       endpoint-independent mapping, address-dependent filtering
#   port       Linux masquerade: EIM, address-and-port-dependent filtering
#   symmetric  masquerade random: a new external port per destination
#   cgnat      masquerade behind masquerade (home router kind selectable)
#
# API (each function's comment has the details):
#   lab_internet                      the internet namespace and its bridge
#   lab_server NAME IP [IP2]          a server on the internet, one or two addresses
#   lab_site NAME KIND [HOME_KIND]    router(s) + LAN host; KIND below
#   lab_set_nat ROUTER KIND           change a router's NAT behaviour now
#   lab_rebind ROUTER HOST_IP PORT NEWPORT
#                                     NAT rebinding: UDP from HOST_IP:PORT leaves
#                                     by external port NEWPORT from now on
#   lab_exec NS CMD...                run CMD in a lab namespace
#   lab_ns NAME                       the real namespace name
#   lab_spawn NS LOG CMD...           background CMD in NS, killed by lab_cleanup
#   lab_coturn SERVER [ARGS...]       start coturn (STUN, RFC 5780) on a server
#   lab_miniupnpd SITE [upnp|natpmp|pcp...] [-- CONF...]
#                                     real miniupnpd on the site's router
#   lab_miniupnpd_stop / _restart SITE   stop it / reboot it (mappings lost)
#   lab_miniupnpd_mappings SITE       the mappings it installed (nft DNATs)
#   lab_miniupnpd_url SITE            its UPnP root description URL
#   lab_wan_ip SITE / lab_host_ip SITE   the site's public / LAN host address
#   lab_router SITE / lab_routers SITE   its home router / all its routers
#   lab_conntrack_timeout NS SECONDS  short UDP conntrack (and mapping) timeouts
#   lab_flush_conntrack NS            forget all NAT state in NS
#   lab_loss NS IFACE PERCENT [DIR]   random loss on a link (nftables numgen)
#   lab_full_checksums NS IFACE       complete UDP checksums from IFACE (for XDP)
#   wait_for TIMEOUT CMD...           bounded poll until CMD succeeds
#   lab_udp_bound NS IP PORT          is a UDP socket bound there (for wait_for)
#   lab_dump                          everything's addresses, rules, conntrack
#   lab_cleanup                       remove all this run made (for the traps)
#
# The library never calls `set -e` or exits: every function returns non-zero and
# says why on stderr, so a caller under `set -euo pipefail` stops there, and one
# without it can test the status. Variables: LAB_VERBOSE=1 logs each step,
# LAB_KEEP=1 keeps the temp directory (logs) after lab_cleanup, LAB_IPV6=1 leaves
# IPv6 enabled in the namespaces (no addresses are assigned yet; DAD is off).

[[ -n ${_LAB_SOURCED:-} ]] && return 0
_LAB_SOURCED=1

LAB_ID=$(mktemp -u XXXXXX)   # the run's suffix, as selftests/net/lib.sh does
LAB_DIR=                     # temp dir for logs and pid files (lab_internet)
LAB_LAST_PID=                # PID of the last lab_spawn
declare -gA LAB_NSMAP=()     # logical name -> real namespace name
declare -ga LAB_NS_ORDER=()  # real names in creation order (removed in reverse)
declare -ga LAB_PIDS=()      # processes lab_spawn started
declare -gA LAB_KIND=()      # site -> kind it was built as
declare -gA LAB_IDX=()       # site -> N
declare -gA LAB_NAT=()       # router -> current NAT kind
declare -gA LAB_SERVER_IPS=() # server -> "ip [ip2]"
declare -gA LAB_PEER=()      # "ns/ifname" -> "ns/ifname" at the veth's other end
_LAB_NSITES=0
_LAB_NSERVERS=0
_LAB_CLEANED=0
LAB_NAT_KINDS="public eim addr port symmetric"
LAB_SITE_KINDS="$LAB_NAT_KINDS cgnat"

_lab_err() { echo "lab: $*" >&2; return 1; }
_lab_log() { [[ -z ${LAB_VERBOSE:-} ]] || echo "lab: $*" >&2; }
_lab_in() { local w; for w in $2; do [[ $w == "$1" ]] && return 0; done; return 1; }

# ---------------------------------------------------------------- helpers

# lab_ns NAME: the real namespace name of a logical one.
lab_ns() {
	local real=${LAB_NSMAP[${1:-}]:-}
	[[ -n $real ]] || _lab_err "no namespace '${1:-}' in this lab" || return 1
	echo "$real"
}

# lab_exec NS CMD...: run a command in a lab namespace.
lab_exec() {
	local ns
	ns=$(lab_ns "${1:-}") || return 1
	shift
	ip netns exec "$ns" "$@"
}

# wait_for TIMEOUT CMD...: poll CMD until it succeeds or TIMEOUT seconds (may
# be fractional) pass. The bounded poll replaces fixed sleeps: it returns as soon
# as the condition holds, and fails if it never does.
wait_for() {
	local timeout=$1 whole frac now deadline
	shift
	whole=${timeout%%.*}
	frac=${timeout#"$whole"}; frac=${frac#.}000000; frac=${frac:0:6}
	now=${EPOCHREALTIME//[!0-9]/}   # microseconds, whatever the locale's point
	deadline=$((now + ${whole:-0} * 1000000 + 10#$frac))
	while :; do
		"$@" && return 0
		now=${EPOCHREALTIME//[!0-9]/}
		((now < deadline)) || return 1
		sleep 0.02
	done
}

# wait_exit PID [TIMEOUT]: wait (default 10 s) until that process is gone.
# After a TERM, wait for this rather than for a log line: a process that has
# said it is stopping may still hold its device, port and pins.
wait_exit() {
	wait_for "${2:-10}" sh -c "! kill -0 $1 2>/dev/null"
}

# lab_spawn NS LOGFILE CMD...: start CMD in the background in NS, output to
# LOGFILE; the PID lands in LAB_LAST_PID and lab_cleanup kills it. (No command
# substitution: the PID must be recorded in the caller's shell.)
lab_spawn() {
	local ns log=$2
	ns=$(lab_ns "$1") || return 1
	shift 2
	ip netns exec "$ns" "$@" >"$log" 2>&1 </dev/null &
	LAB_LAST_PID=$!   # ip netns exec execs CMD: this is CMD's PID
	LAB_PIDS+=("$LAB_LAST_PID")
	_lab_log "spawned $1 (pid $LAB_LAST_PID) in $ns"
}

# lab_wan_ip SITE: the address the internet sees for the site's host (its
# server-reflexive address): the outermost router's WAN, or for a public site
# the host's own address.
lab_wan_ip() {
	local site=${1:-} n
	n=${LAB_IDX[$site]:-}
	[[ -n $n ]] || _lab_err "no site '$site'" || return 1
	if [[ ${LAB_KIND[$site]} == public ]]; then echo "198.19.$n.2"; else echo "198.18.$n.1"; fi
}

# lab_host_ip SITE: the LAN host's own address.
lab_host_ip() {
	local site=${1:-} n
	n=${LAB_IDX[$site]:-}
	[[ -n $n ]] || _lab_err "no site '$site'" || return 1
	if [[ ${LAB_KIND[$site]} == public ]]; then echo "198.19.$n.2"; else echo "10.$n.0.2"; fi
}

# lab_router SITE: the site's home router (NAME-gw). lab_routers SITE: all of its
# routers, outermost first (NAME-cgn NAME-gw for cgnat).
lab_router() {
	[[ -n ${LAB_IDX[${1:-}]:-} ]] || _lab_err "no site '${1:-}'" || return 1
	echo "$1-gw"
}
lab_routers() {
	[[ -n ${LAB_IDX[${1:-}]:-} ]] || _lab_err "no site '${1:-}'" || return 1
	if [[ ${LAB_KIND[$1]} == cgnat ]]; then echo "$1-cgn $1-gw"; else echo "$1-gw"; fi
}

# ---------------------------------------------------------------- namespaces

# _lab_add_ns NAME ROLE: create a namespace (ROLE router|host) with sane sysctls
# set before any interface exists, so new interfaces inherit the defaults.
_lab_add_ns() {
	local name=$1 role=$2 real="$1-$LAB_ID"
	[[ $name =~ ^[A-Za-z0-9_.-]{1,40}$ ]] || _lab_err "bad name '$name' (letters, digits, _.-)" || return 1
	[[ -z ${LAB_NSMAP[$name]:-} ]] || _lab_err "namespace '$name' exists already" || return 1
	ip netns add "$real" || return 1
	LAB_NSMAP[$name]=$real
	LAB_NS_ORDER+=("$real")
	local fwd=0
	[[ $role == router ]] && fwd=1
	# IPv4 settings of a new netns are copied from the caller's namespace: set
	# every one that matters. rp_filter 2 (loose) drops only unroutable sources.
	ip netns exec "$real" sysctl -q -w \
		net.ipv4.ip_forward=$fwd \
		net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.default.rp_filter=2 \
		net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0 \
		net.ipv4.conf.all.accept_redirects=0 net.ipv4.conf.default.accept_redirects=0 \
		>/dev/null || return 1
	if [[ -n ${LAB_IPV6:-} && ${LAB_IPV6} != 0 ]]; then
		ip netns exec "$real" sysctl -q -w net.ipv6.conf.default.accept_dad=0 \
			net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.all.forwarding=$fwd >/dev/null || return 1
	else
		# IPv4 only for now: no link-local chatter (MLD, RS) in captures.
		ip netns exec "$real" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 \
			net.ipv6.conf.default.disable_ipv6=1 >/dev/null || return 1
	fi
	ip -n "$real" link set lo up || return 1
	_lab_log "namespace $name = $real ($role)"
}

# _lab_link NS_A IF_A NS_B IF_B: a veth pair between two lab namespaces,
# created directly inside them, both ends up.
_lab_link() {
	local a b
	a=$(lab_ns "$1") && b=$(lab_ns "$3") || return 1
	ip -n "$a" link add "$2" type veth peer name "$4" netns "$b" || return 1
	ip -n "$a" link set "$2" up && ip -n "$b" link set "$4" up || return 1
	LAB_PEER[$1/$2]="$3/$4"
	LAB_PEER[$3/$4]="$1/$2"
}

# _lab_uplink NS IF PORT: link NS to the internet bridge; PORT names the
# bridge-side end inside inet.
_lab_uplink() {
	_lab_link "$1" "$2" inet "$3" || return 1
	ip -n "$(lab_ns inet)" link set "$3" master br0
}

# _lab_addr NS IF CIDR...: assign addresses.
_lab_addr() {
	local ns dev=$2 a
	ns=$(lab_ns "$1") || return 1
	shift 2
	for a in "$@"; do ip -n "$ns" addr add "$a" dev "$dev" || return 1; done
}

# _lab_route NS ROUTE...: add a route (ip route syntax).
_lab_route() {
	local ns
	ns=$(lab_ns "$1") || return 1
	shift
	ip -n "$ns" route add "$@"
}

# lab_internet: the "internet" namespace: one bridge that every server and
# every site's outermost router plugs into, 198.18.0.0/15 on-link everywhere.
lab_internet() {
	[[ -z ${LAB_NSMAP[inet]:-} ]] || _lab_err "lab_internet called twice" || return 1
	LAB_DIR=$(mktemp -d "/tmp/natlab-$LAB_ID.XXXX") || return 1
	_lab_add_ns inet host || return 1
	local ns
	ns=$(lab_ns inet)
	# STP off (the default) puts ports straight into forwarding: no 30 s wait.
	ip -n "$ns" link add br0 type bridge stp_state 0 || return 1
	ip -n "$ns" link set br0 up || return 1
	# If br_netfilter is loaded, keep bridged frames out of this namespace's IP
	# hooks: the internet is a plain switch.
	ip netns exec "$ns" sysctl -q -w net.bridge.bridge-nf-call-iptables=0 \
		net.bridge.bridge-nf-call-arptables=0 >/dev/null 2>&1 || true
}

# lab_server NAME IP [IP2]: a host on the internet bridge with one or two
# addresses (two for an RFC 5780 STUN server: CHANGE-REQUEST answers from the
# other address).
lab_server() {
	local name=${1:-} ip1=${2:-} ip2=${3:-}
	[[ -n $name && -n $ip1 ]] || _lab_err "usage: lab_server NAME IP [IP2]" || return 1
	[[ -n ${LAB_NSMAP[inet]:-} ]] || _lab_err "call lab_internet first" || return 1
	_LAB_NSERVERS=$((_LAB_NSERVERS + 1))
	_lab_add_ns "$name" host || return 1
	_lab_uplink "$name" eth0 "v$_LAB_NSERVERS" || return 1
	_lab_addr "$name" eth0 "$ip1/15" ${ip2:+"$ip2/15"} || return 1
	LAB_SERVER_IPS[$name]="$ip1${ip2:+ $ip2}"
}

# lab_site NAME KIND [HOME_KIND]: a router and a LAN host behind it (see the
# topology above). For KIND cgnat, HOME_KIND is the home router's kind (default
# port, i.e. masquerade behind masquerade).
lab_site() {
	local name=${1:-} kind=${2:-} home=${3:-port}
	[[ -n $name ]] && _lab_in "$kind" "$LAB_SITE_KINDS" ||
		_lab_err "usage: lab_site NAME {${LAB_SITE_KINDS// /|}} [HOME_KIND]" || return 1
	[[ -n ${LAB_NSMAP[inet]:-} ]] || _lab_err "call lab_internet first" || return 1
	[[ $kind != cgnat ]] || { _lab_in "$home" "$LAB_NAT_KINDS" && [[ $home != public ]]; } ||
		_lab_err "cgnat: home router kind '$home' must be a NAT kind" || return 1
	((_LAB_NSITES < 250)) || _lab_err "too many sites" || return 1
	_LAB_NSITES=$((_LAB_NSITES + 1))
	local n=$_LAB_NSITES gw="$name-gw" lan_net
	LAB_IDX[$name]=$n
	LAB_KIND[$name]=$kind
	_lab_add_ns "$gw" router && _lab_add_ns "$name" host || return 1

	case $kind in
	public)
		# Routed, not NATed: the LAN is a public /24 inside the lab's /15. Other
		# hosts on the bridge take 198.19.N.2 as on-link and ARP for it; proxy
		# ARP on the gw's WAN answers, because the gw routes it via its LAN.
		_lab_uplink "$gw" wan "s$n" && _lab_addr "$gw" wan "198.18.$n.1/15" || return 1
		# Answer at once: Linux delays proxy ARP replies by up to 0.8 s
		# (proxy_delay), which made a public host's first packets to a
		# new neighbour wait, as no real router does.
		lab_exec "$gw" sysctl -q -w net.ipv4.conf.wan.proxy_arp=1 \
			net.ipv4.neigh.wan.proxy_delay=0 >/dev/null || return 1
		lan_net="198.19.$n"
		;;
	cgnat)
		# The carrier router owns the internet address; the home router's WAN
		# is in the shared address space 100.64.0.0/10.
		local cgn="$name-cgn"
		_lab_add_ns "$cgn" router || return 1
		_lab_uplink "$cgn" wan "s$n" && _lab_addr "$cgn" wan "198.18.$n.1/15" || return 1
		_lab_link "$cgn" lan "$gw" wan || return 1
		_lab_addr "$cgn" lan "100.64.$n.1/24" && _lab_addr "$gw" wan "100.64.$n.2/24" || return 1
		_lab_route "$gw" default via "100.64.$n.1" || return 1
		lan_net="10.$n.0"
		;;
	*)
		_lab_uplink "$gw" wan "s$n" && _lab_addr "$gw" wan "198.18.$n.1/15" || return 1
		lan_net="10.$n.0"
		;;
	esac
	_lab_link "$gw" lan "$name" eth0 || return 1
	_lab_addr "$gw" lan "$lan_net.1/24" && _lab_addr "$name" eth0 "$lan_net.2/24" || return 1
	_lab_route "$name" default via "$lan_net.1" || return 1

	if [[ $kind == cgnat ]]; then
		lab_set_nat "$name-cgn" port && lab_set_nat "$gw" "$home"
	else
		lab_set_nat "$gw" "$kind"
	fi
}

# ---------------------------------------------------------------- NAT

# _lab_map_timeout NS: how long an eim/addr mapping lives without outbound
# traffic: the longer of the namespace's two UDP conntrack timeouts, so a
# mapping never dies before the flows that use it.
_lab_map_timeout() {
	local a b
	a=$(lab_exec "$1" sysctl -n net.netfilter.nf_conntrack_udp_timeout) &&
		b=$(lab_exec "$1" sysctl -n net.netfilter.nf_conntrack_udp_timeout_stream) || return 1
	echo $((a > b ? a : b))
}

# _lab_track_rules KIND TIMEOUT: the rules of chain `track` (one per line),
# which record mappings for eim and addr. They run in postrouting just after
# SNAT (priority srcnat + 1), when conntrack's reply tuple already holds the
# external port the NAT chose, so the maps are right even when masquerade could
# not preserve the port. Outbound packets of a flow the host started are
# direction original; replies of a flow let in from outside are direction reply.
_lab_track_rules() {
	local kind=$1 t=$2
	local out='oifname "wan" meta l4proto udp ct direction original'
	local back='oifname "wan" meta l4proto udp ct direction reply'
	case $kind in
	eim|addr)
		# external port -> internal address . port
		echo "$out update @eim_map { ct reply proto-dst timeout ${t}s : ct original ip saddr . ct original proto-src }"
		echo "$back update @eim_map { ct original proto-dst timeout ${t}s : ct reply ip saddr . ct reply proto-src }"
		;;&
	addr)
		# (external port, remote address) pairs the host has sent to
		echo "$out update @addr_ok { ct reply proto-dst . ct reply ip saddr timeout ${t}s }"
		echo "$back update @addr_ok { ct original proto-dst . ct original ip saddr timeout ${t}s }"
		;;
	esac
}

# _lab_nat_ruleset KIND TIMEOUT: the nft script that gives a router (WAN "wan",
# LAN "lan") its behaviour, as one atomic transaction replacing table
# ip lab_nat. How each kind is built, and why:
#
# All NAT kinds share:
#   - a guard on the router's own input: new TCP/UDP from the WAN is dropped
#     unless a local socket waits for it (miniupnpd, its STUN check). Real
#     routers do that; it also matters here: an unsolicited packet (a peer's
#     punch arriving first) that reached the router's input would leave a
#     confirmed conntrack entry peer -> WAN:port, and masquerade would then pick
#     another port for the host's next packet to that peer (a tuple clash),
#     making every NAT look symmetric during hole punching.
#   - a guard on forwarding: the internet reaches the LAN only by replies to
#     flows the LAN started (established/related) or through the eim DNAT (ct
#     status dnat); even a host that routes 10.N.0.0/24 at the router gets nothing.
#   - masquerade on the WAN. Linux NAT keeps the source port when that gives a
#     unique tuple, and uniqueness is per 5-tuple, so one internal ip:port keeps
#     one external port whatever the destination: endpoint-independent mapping.
#     The router's own packets from its WAN address leave untranslated, as on
#     a real router: `masquerade random` would otherwise give them random
#     ports too, and miniupnpd's STUN check on a symmetric router would find
#     itself behind a NAT and refuse to forward.
#
# port       masquerade alone. Inbound packets pass only if conntrack knows the
#            exact remote ip:port: address-and-port-dependent filtering.
# symmetric  masquerade random: the port is drawn from a hash of the tuple
#            including the destination, so each destination gets a new port.
# eim        masquerade plus the map eim_map {external port : internal ip .
#            port}, filled by the host's outbound UDP (chain track), and a DNAT
#            in prerouting of any new inbound UDP to a port found in it: anyone
#            may send to a mapping, "full cone". Entries live TIMEOUT seconds
#            after the last outbound packet. TCP behaves as port.
# addr       eim's map plus the set addr_ok {external port . remote ip} filled
#            by the same outbound packets; the DNAT applies only to a packet
#            whose (dport, saddr) is in addr_ok: any port of an address the host
#            has sent to from that mapping, "address-restricted cone".
# public     no table at all: plain routing, no filter.
_lab_nat_ruleset() {
	local kind=$1 t=$2 masq=masquerade
	[[ $kind == symmetric ]] && masq="masquerade random"
	echo "table ip lab_nat"          # create-then-delete: works whether or not
	echo "delete table ip lab_nat"   # it exists, in the same transaction
	[[ $kind == public ]] && return 0
	cat <<EOF
table ip lab_nat {
	map eim_map {
		typeof udp dport : ip daddr . udp dport
		flags dynamic, timeout
	}
	set addr_ok {
		typeof udp dport . ip saddr
		flags dynamic, timeout
	}
	chain guard_input {
		type filter hook input priority filter; policy accept;
		iifname "wan" ct state new meta l4proto { tcp, udp } socket wildcard { 0, 1 } accept
		iifname "wan" ct state new meta l4proto { tcp, udp } drop
	}
	chain guard_forward {
		type filter hook forward priority filter; policy accept;
		iifname "wan" oifname "lan" ct state established,related accept
		iifname "wan" oifname "lan" ct status dnat accept
		iifname "wan" oifname "lan" drop
	}
	chain nat_out {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan" fib saddr . oif type local accept
		oifname "wan" $masq
	}
	chain nat_in {
		type nat hook prerouting priority dstnat; policy accept;
EOF
	case $kind in
	eim) echo '		iifname "wan" dnat ip to udp dport map @eim_map' ;;
	addr) echo '		iifname "wan" udp dport . ip saddr @addr_ok dnat ip to udp dport map @eim_map' ;;
	esac
	cat <<EOF
	}
	chain track {
		type filter hook postrouting priority srcnat + 1; policy accept;
$(_lab_track_rules "$kind" "$t" | sed 's/^/\t\t/')
	}
}
EOF
}

# lab_set_nat ROUTER KIND: give a router (NAME-gw, NAME-cgn, or a site NAME for
# its gw) a NAT kind, now, atomically. Flows already in conntrack keep the NAT
# they had; lab_flush_conntrack makes the change apply to them too. KIND public
# only routes: right for a public site (e.g. back from a NAT kind), but a LAN on
# 10.N/24 is then unreachable, as nothing on the internet routes to it.
lab_set_nat() {
	local r=${1:-} kind=${2:-} t
	[[ -n ${LAB_IDX[$r]:-} ]] && r="$r-gw"
	[[ -n ${LAB_NSMAP[$r]:-} ]] && [[ $r == *-gw || $r == *-cgn ]] || _lab_err "no router '${1:-}'" || return 1
	_lab_in "$kind" "$LAB_NAT_KINDS" ||
		_lab_err "lab_set_nat: kind must be one of: $LAB_NAT_KINDS" || return 1
	t=$(_lab_map_timeout "$r") || return 1
	_lab_nat_ruleset "$kind" "$t" | lab_exec "$r" nft -f - || _lab_err "nft failed on $r" || return 1
	LAB_NAT[$r]=$kind
	_lab_log "$r: nat $kind"
}

# lab_rebind ROUTER HOST_IP PORT NEWPORT: a NAT rebinding. From now on the
# router (NAME-gw, NAME-cgn, or a site NAME for its gw) maps UDP from the LAN
# address HOST_IP, source port PORT, to external port NEWPORT on its WAN
# address, for every destination: the mapping stays endpoint-independent, only
# its port changes. (For a cgnat site's carrier router HOST_IP is the home
# router's WAN, 100.64.N.2.) A rule `snat ip to WAN:NEWPORT` goes first in
# chain nat_out, ahead of the masquerade, replacing an earlier lab_rebind of
# the same HOST_IP:PORT; then the router's conntrack is flushed
# (lab_flush_conntrack), so that flows already mapped take the new port with
# their next packet. A later lab_set_nat rewrites the table and drops the rule.
# Filtering stays the kind's (on a symmetric router the rule makes this one
# mapping endpoint-independent). A port-restricted NAT on the far side, which
# let the old port in, drops packets from the new one until its host sends
# there.
lab_rebind() {
	local r=${1:-} host=${2:-} port=${3:-} newport=${4:-} wan h tag
	[[ -n ${LAB_IDX[$r]:-} ]] && r="$r-gw"
	[[ -n ${LAB_NSMAP[$r]:-} ]] && [[ $r == *-gw || $r == *-cgn ]] ||
		_lab_err "lab_rebind: no router '${1:-}'" || return 1
	[[ $host =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ && $port =~ ^[0-9]+$ && $newport =~ ^[0-9]+$ ]] &&
		((port >= 1 && port <= 65535 && newport >= 1 && newport <= 65535)) ||
		_lab_err "usage: lab_rebind ROUTER HOST_IP PORT NEWPORT" || return 1
	[[ ${LAB_NAT[$r]:-public} != public ]] || _lab_err "lab_rebind: $r does no NAT" || return 1
	wan=$(lab_exec "$r" ip -4 -o addr show dev wan | awk '{ sub("/.*", "", $4); print $4; exit }')
	[[ -n $wan ]] || _lab_err "lab_rebind: $r has no WAN address" || return 1
	tag="lab_rebind $host:$port"
	# Older rebinds of the same HOST_IP:PORT go: the newest is the only one.
	for h in $(lab_exec "$r" nft -a list chain ip lab_nat nat_out |
		sed -nE "s/.*comment \"$tag\" # handle ([0-9]+).*/\1/p"); do
		lab_exec "$r" nft delete rule ip lab_nat nat_out handle "$h" || return 1
	done
	lab_exec "$r" nft insert rule ip lab_nat nat_out oifname '"wan"' ip saddr "$host" \
		udp sport "$port" snat ip to "$wan:$newport" comment "\"$tag\"" ||
		_lab_err "lab_rebind: nft failed on $r" || return 1
	lab_flush_conntrack "$r" || return 1
	_lab_log "$r: $host:$port now leaves as $wan:$newport"
}

# lab_conntrack_timeout NS SECONDS: short UDP conntrack timeouts in one
# namespace (both the unreplied and the stream value; these sysctls are per
# network namespace). On an eim/addr router the mapping lifetime follows: the
# track chain is rewritten with the new timeout, existing mappings kept.
lab_conntrack_timeout() {
	local ns=${1:-} s=${2:-}
	[[ $s =~ ^[0-9]+$ ]] && ((s > 0)) || _lab_err "usage: lab_conntrack_timeout NS SECONDS" || return 1
	lab_exec "$ns" sysctl -q -w net.netfilter.nf_conntrack_udp_timeout="$s" \
		net.netfilter.nf_conntrack_udp_timeout_stream="$s" >/dev/null || return 1
	case ${LAB_NAT[$ns]:-} in
	eim|addr)
		{
			echo "flush chain ip lab_nat track"
			_lab_track_rules "${LAB_NAT[$ns]}" "$s" | sed 's/^/add rule ip lab_nat track /'
		} | lab_exec "$ns" nft -f - || return 1
		;;
	esac
}

# lab_flush_conntrack NS: forget all NAT state in NS: conntrack entries and the
# eim/addr mapping tables.
lab_flush_conntrack() {
	local ns=${1:-}
	lab_ns "$ns" >/dev/null || return 1
	lab_exec "$ns" conntrack -F >/dev/null 2>&1 || true   # an empty table is no error
	if lab_exec "$ns" nft list table ip lab_nat >/dev/null 2>&1; then
		lab_exec "$ns" nft -f - <<-EOF || return 1
		flush map ip lab_nat eim_map
		flush set ip lab_nat addr_ok
		EOF
	fi
}

# lab_loss NS IFACE PERCENT [in|out|both]: drop PERCENT % of the IP packets
# crossing IFACE at random (nftables numgen; no netem here), in the chosen
# direction (default both: every packet, either way, is lost with PERCENT %).
# Both directions drop at an ingress hook, "out" at the ingress of IFACE's veth
# peer: a drop at IFACE's own egress would be reported to the sending socket
# (ENOBUFS; ping even retries), a packet lost on the wire is not. ARP is spared
# so that loss stays per packet, not per neighbour. PERCENT 0 removes it; the
# two directions are set independently.
lab_loss() {
	local ns=${1:-} dev=${2:-} pct=${3:-} dir=${4:-both} peer
	[[ $pct =~ ^[0-9]+$ ]] && ((pct <= 100)) && [[ -n $dev ]] && _lab_in "$dir" "in out both" ||
		_lab_err "usage: lab_loss NS IFACE PERCENT [in|out|both]" || return 1
	peer=${LAB_PEER[$ns/$dev]:-}
	[[ -n $peer ]] || _lab_err "lab_loss: no lab link $dev in $ns" || return 1
	if [[ $dir != out ]]; then _lab_ingress_loss "$ns" "$dev" "$pct" || return 1; fi
	if [[ $dir != in ]]; then _lab_ingress_loss "${peer%/*}" "${peer#*/}" "$pct" || return 1; fi
}

# _lab_ingress_loss NS DEV PERCENT: (re)write table netdev lab_loss_DEV.
_lab_ingress_loss() {
	local t="lab_loss_$2" rule="numgen random mod 100 < $3 drop"
	(($3 < 100)) || rule=drop   # nft rejects "< 100" as out of range
	{
		echo "table netdev $t"
		echo "delete table netdev $t"
		(($3 == 0)) || cat <<-EOF
		table netdev $t {
			chain ingress {
				type filter hook ingress device "$2" priority filter;
				meta protocol { ip, ip6 } $rule
			}
		}
		EOF
	} | lab_exec "$1" nft -f -
}

# lab_full_checksums NS IFACE: IFACE's sender puts complete UDP checksums on
# the wire, as packets that come from a real NIC have. A veth otherwise
# leaves only the pseudo-header sum in the packet (CHECKSUM_PARTIAL), which
# XDP rightly refuses to answer (see tests/netns/xdp_attach.c, peer-setup).
# ethtool is not among the lab's packages: the ioctl from Python.
lab_full_checksums() {
	lab_exec "${1:-}" /usr/bin/python3 - "${2:-}" <<-'PYEOF'
	import array, fcntl, socket, struct, sys
	ETHTOOL_STXCSUM, SIOCETHTOOL = 0x17, 0x8946
	val = array.array("B", struct.pack("II", ETHTOOL_STXCSUM, 0))
	ifr = struct.pack("16sQ16x", sys.argv[1].encode(), val.buffer_info()[0])
	fcntl.ioctl(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), SIOCETHTOOL, ifr)
	PYEOF
}

# ---------------------------------------------------------------- services

# lab_udp_bound NS IP PORT: is a UDP socket bound to IP:PORT in NS? (For
# wait_for: a server is ready once its sockets are.)
lab_udp_bound() {
	[[ -n $(lab_exec "$1" ss -Hlun src "$2:$3" 2>/dev/null) ]]
}

# lab_coturn SERVER [ARGS...]: start the real coturn on a server's addresses,
# port 3478 (and 3479, its RFC 5780 alternate port), STUN only with no TLS/DTLS
# and no CLI, logging to $LAB_DIR/coturn-SERVER.log; waits until every listener
# is bound. Extra ARGS go to turnserver (e.g. TURN credentials). With two
# addresses coturn answers RFC 5780 / RFC 3489 CHANGE-REQUESTs.
lab_coturn() {
	local srv=${1:-} ip port
	[[ -n ${LAB_SERVER_IPS[$srv]:-} ]] || _lab_err "no server '$srv'" || return 1
	shift
	local args=(-n --no-cli --no-tls --no-dtls --log-file=stdout --simple-log
		--pidfile="$LAB_DIR/coturn-$srv.pid" --userdb="$LAB_DIR/coturn-$srv.db"
		--listening-port=3478 --alt-listening-port=3479)
	for ip in ${LAB_SERVER_IPS[$srv]}; do args+=(--listening-ip="$ip"); done
	lab_spawn "$srv" "$LAB_DIR/coturn-$srv.log" turnserver "${args[@]}" "$@" || return 1
	for ip in ${LAB_SERVER_IPS[$srv]}; do
		for port in 3478 3479; do
			wait_for 10 lab_udp_bound "$srv" "$ip" "$port" ||
				_lab_err "coturn on $srv: $ip:$port not bound (see $LAB_DIR/coturn-$srv.log)" || return 1
		done
	done
	# The first RFC 5780 server is the one miniupnpd's STUN check uses.
	[[ -n $LAB_STUN_SERVER || ${LAB_SERVER_IPS[$srv]} != *\ * ]] ||
		LAB_STUN_SERVER="${LAB_SERVER_IPS[$srv]%% *}:3478"
}

# ---------------------------------------------------------------- port mapping

# lab_miniupnpd SITE [upnp] [natpmp] [pcp] [-- CONFIG_LINE...]
#     Start Debian's real miniupnpd (2.3.1, nftables backend) on the site's
#     home router SITE-gw, WAN "wan", serving the LAN "lan" (10.N.0.0/24),
#     with only the named protocols (default: all three). SITE of any kind
#     but public (for cgnat, the home router; see the STUN verdict below).
#     Returns once it has finished its STUN check and its sockets are bound,
#     or non-zero with the log's tail. Call it from the test's own shell, not in $(...) or
#     tap_check: the PID and state land in the caller's variables:
#       LAB_UPNPD_PID[SITE]    its PID (also in LAB_PIDS: lab_cleanup stops it)
#       LAB_UPNPD_LOG[SITE]    its log (-d: debug level), one file per start:
#                              $LAB_DIR/miniupnpd-SITE.<run>.log
#       LAB_UPNPD_FWD[SITE]    enabled | disabled: its STUN verdict (below)
#       LAB_UPNPD_PROTOS[SITE] the protocols served
#     Config: $LAB_DIR/miniupnpd-SITE.conf; leases: $LAB_DIR/miniupnpd-SITE.leases.
#     CONFIG_LINEs after "--" override the defaults key by key
#     ("max_lifetime=86400", "secure_mode=no", "min_lifetime=120"; the HTTP
#     port is LAB_UPNPD_HTTP_PORT, not a config line); "allow ..."/
#     "deny ..." lines replace the default permission rules (end them with a
#     deny: a request no rule matches is accepted). The STUN server is
#     $LAB_MINIUPNPD_STUN (IP[:PORT]) or else the first two-address lab_coturn.
#     Clients: UPnP at http://10.N.0.1:5000/rootDesc.xml (lab_miniupnpd_url;
#     SSDP discovery works too), NAT-PMP and PCP at 10.N.0.1:5351.
# lab_miniupnpd_stop SITE
#     Stop it (TERM, KILL after 3 s) and clear what a stopped router keeps no
#     more: its nftables table, lease and pid files, and the conntrack entries
#     of the flows its mappings had let in. The config stays.
# lab_miniupnpd_restart SITE
#     A router reboot as far as port mapping goes: stop as above, start again
#     with the same config and protocols. Every mapping is gone, NAT-PMP/PCP
#     epoch and UPnP uptime start again from 0, BOOTID changes; the URL stays.
#     (The router's other conntrack state survives, and on an eim/addr router
#     the lab's own full-cone map keeps open the ports the host sent from:
#     add lab_flush_conntrack for a full reboot.) lab_set_nat leaves
#     miniupnpd and its table alone.
# lab_miniupnpd_mappings SITE
#     What miniupnpd has installed, one line per DNAT rule:
#     "udp EXTPORT INTERNAL_IP:PORT" (or tcp): the ground truth of what forwards.
# lab_miniupnpd_url SITE
#     The root description URL, for `upnpc -u URL` (skips the 2 s SSDP search).
#
# What miniupnpd 2.3.1 does here, and what the config must say (learnt in this
# lab; the Debian package ships no miniupnpd.conf or man page, and its
# /etc/miniupnpd/nft_*.sh scripts source a file it does not ship):
#   - 198.18.0.0/15 counts as reserved: without ext_perform_stun=yes it logs
#     "Reserved / private IP address 198.18.N.1 on ext interface wan: Port
#     forwarding is impossible", and ext_ip= is refused for such an address.
#     With STUN it sends four Binding requests (plain and CHANGE-REQUESTs) and
#     logs either "STUN: ext interface wan with IP address ... is now behind
#     unrestricted full-cone NAT 1:1 ..." and "Port forwarding is now enabled",
#     or "... behind restrictive or symmetric NAT ..." and "Port forwarding is
#     now disabled". It needs an RFC 5780 server: against a one-address STUN
#     server the changed-address answers never come and it disables
#     forwarding. On a cgnat site it rightly disables it too (the CGN filters),
#     after ~10 s of retries; requests then fail: UPnP AddPortMapping 501
#     (Action Failed), NAT-PMP result 3 (network failure), PCP result 8
#     (NO_RESOURCES), while the public address given is the CGN's.
#   - It creates no nftables table or chain of its own: without them every rule
#     fails ("nft_send_rule(...) send_batch failed -4"). They are made here as
#     table inet lab_upnp (upnp_table_name, upnp_nat_table_name) with its
#     default chain names miniupnpd (filter), prerouting_miniupnpd and
#     postrouting_miniupnpd (nat), jumped to from base chains one priority
#     ahead of table ip lab_nat's (forward filter - 1, prerouting dstnat - 1,
#     postrouting srcnat - 1): on an eim router a mapping is looked up before
#     the eim map. A
#     mapping appears in `nft list table inet lab_upnp` (in the router) as
#       prerouting_miniupnpd: iif "wan" @nh,72,8 0x11 th dport 40000 dnat ip to 10.1.0.2:40000
#       miniupnpd:            iif "wan" th dport 40000 @nh,128,32 0xa010002 @nh,72,8 0x11 accept
#     (0x11 = UDP, 0x6 = TCP; the filter rule matches the internal address and
#     port, after DNAT). lab_nat's guard_forward admits DNATed flows (ct status
#     dnat), so the DNAT is what opens a port, on every NAT kind. MAP adds no
#     postrouting rule (only PCP PEER would): outbound packets from a mapped
#     port still leave by the lab's masquerade, i.e. on a symmetric router by a
#     random port, and with EXTPORT != port by the internal port if free.
#     (The lab's masquerade spares the router's own packets, or on a symmetric
#     router miniupnpd's STUN check would see random ports and refuse.)
#   - On TERM it leaves its rules and the lease file in place, and on start it
#     reloads the lease file and reinstalls unexpired mappings: a plain
#     restart keeps mappings. Hence lab_miniupnpd_restart deletes both.
#   - Removing a mapping (expiry, delete) removes its rules but not conntrack:
#     a remote ip:port that was already talking through it keeps getting in
#     until its conntrack entry times out. Probe a dead mapping from a new
#     source port.
#   - The default pid file /var/run/miniupnpd.pid is shared by all namespaces
#     ("MiniUPnPd is already running. EXITING"): -P gives each its own. The
#     MiniSSDPd socket path (minissdpdsocket) is pointed into $LAB_DIR so no
#     host daemon is ever asked.
#   - enable_upnp and enable_natpmp are the only switches: 2.3.1 has no
#     enable_pcp_pmp (later versions) and no way to run NAT-PMP without PCP or
#     the reverse; both answer on 5351 when enable_natpmp=yes ("Listening for
#     NAT-PMP/PCP traffic on port 5351"). natpmp alone or pcp alone is made here with
#     nftables in table lab_upnp (chains proto_in, proto_out): requests of the
#     other version (first byte 0 NAT-PMP, 2 PCP) to 5351 are rejected with
#     ICMP port unreachable, as by a router without that service (natpmpc:
#     "the gateway does not support nat-pmp", errno 111), and its multicast
#     from 5351 is dropped: for natpmp alone that is the PCP ANNOUNCE it sends
#     to 224.0.0.1:5350 at start, logged "PCPSendUnsolicitedAnnounce(sockets[0])
#     sendto(): Operation not permitted". A real NAT-PMP-only server would
#     answer PCP with UNSUPP_VERSION instead. The start line names what runs:
#     "version 2.3.1 starting NAT-PMP/PCP UPnP-IGD ext if wan", or only
#     "UPnP-IGD", or only "NAT-PMP/PCP".
#   - Lease limits: UPnP grants any duration as asked (5 s works), 0 or more
#     than 604800 becomes 604800 (IGDv2). NAT-PMP grants what it is asked, no
#     clamp. PCP clamps to [min_lifetime, max_lifetime], by default 120 and
#     86400: set here to 1 and 3600, so short PCP leases are granted as asked.
#     Expiry is to the second (whole-second clock: 4 s leases went after
#     3.2 to 4.3 s).
#   - secure_mode=yes: a host may map only its own address (UPnP for another:
#     718 ConflictInMappingEntry, logged "Client 10.1.0.2 tried to redirect
#     port to 10.1.0.3"). The permission rules allow ports 1024-65535 to
#     1024-65535 from the LAN; UPnP outside them: 606 (Action not authorized).
#     A NAT-PMP request whose internal port is denied makes 2.3.1 try every
#     external port (65535 permission checks, ~65k log lines, seconds) before
#     answering "not authorized": keep test ports inside the rules.
#   - NAT-PMP epoch and PCP epoch = seconds since miniupnpd started; the UPnP
#     uptime is the daemon's (system_uptime=no); both reset on restart.
#   - PCP: a MAP with lifetime 0 deletes only with the nonce that made the
#     mapping (another nonce: result 2 NOT_AUTHORIZED, logged "Unauthorized to
#     remove PCP mapping"). The description upnpc -l shows, 'PCP MAP <24 hex>',
#     is the nonce as three 32-bit words in host (little-endian) order.
#   - Clients (miniupnpc 2.2.4, natpmpc 20150609):
#       UPNP_GetValidIGD() returns 2 here (the external address is reserved):
#       upnpc prints "Found a (not connected?) IGD : URL" and stops with "No
#       valid UPNP Internet Gateway Device found." unless given -i ("Trying to
#       continue anyway"). With -u URL it skips that check ("Found valid
#       IGD"). upnpc exits 0 even when AddPortMapping fails: parse its output.
#       upnpc -a: "external 198.18.1.1:40000 UDP is redirected to internal
#         10.1.0.2:40000 (duration=30)" or "AddPortMapping(40000, 40000,
#         10.1.0.2) failed with code 718 (ConflictInMappingEntry)"
#       upnpc -l: " 0 UDP 40000->10.1.0.2:40000 'libminiupnpc' '' 28" (index,
#         protocol, ext->int, description, remote host, seconds left), every
#         mapping whichever protocol made it (descriptions 'NAT-PMP 40001
#         udp', 'PCP MAP <nonce hex>'), then "GetGenericPortMappingEntry()
#         returned 713 (SpecifiedArrayIndexInvalid)" at the end of the list
#       upnpc -d: "UPNP_DeletePortMapping() returned : 0" (0 also for a
#         mapping that does not exist)
#       upnpc -s: "Status : Connected, uptime=7s, LastConnectionError : ..."
#       against a router without UPnP: "connect: Connection refused" with -u,
#         "No IGD UPnP Device found on the network !" after 8 s of SSDP
#       natpmpc: "Public IP address : 198.18.1.1", "epoch = 12"
#       natpmpc -a 40001 40001 udp 20: "Mapped public port 40001 protocol UDP
#         to local port 40001 liftime 20" (sic); lifetime 0 deletes ("Mapped
#         public port 0 ... liftime 0"); a failure ends in
#         "readnatpmpresponseorretry() failed : not authorized" (or ": network
#         failure") and a non-zero exit.
#     There is no PCP client in Debian: tests/netns/upnp_probe.py pcp sends a
#     hand-made RFC 6887 MAP request.
LAB_STUN_SERVER=               # ip:port of the first two-address lab_coturn
LAB_UPNPD_HTTP_PORT=5000       # fixed, as on real routers: the URL survives a restart
declare -gA LAB_UPNPD_PID=()   # site -> miniupnpd PID
declare -gA LAB_UPNPD_LOG=()   # site -> log of its current run
declare -gA LAB_UPNPD_FWD=()   # site -> enabled | disabled
declare -gA LAB_UPNPD_PROTOS=() # site -> protocols served
declare -gA _LAB_UPNPD_RUNS=() # site -> starts so far

lab_miniupnpd() {
	local site=${1:-} p c n stun
	local -a plist=() extra=() conf=() rules=() kept=()
	[[ -n ${LAB_IDX[$site]:-} ]] || _lab_err "lab_miniupnpd: no site '$site'" || return 1
	shift
	while (($#)); do
		case $1 in
		--) shift; extra=("$@"); break ;;
		upnp|natpmp|pcp) _lab_in "$1" "${plist[*]}" || plist+=("$1") ;;
		*) _lab_err "usage: lab_miniupnpd SITE [upnp] [natpmp] [pcp] [-- CONFIG_LINE...]"; return 1 ;;
		esac
		shift
	done
	((${#plist[@]})) || plist=(upnp natpmp pcp)
	[[ ${LAB_KIND[$site]} != public ]] ||
		_lab_err "lab_miniupnpd: site '$site' is public: no NAT to map through" || return 1
	[[ -z ${LAB_UPNPD_PID[$site]:-} ]] ||
		_lab_err "lab_miniupnpd: already running on $site (lab_miniupnpd_stop or _restart)" || return 1
	stun=${LAB_MINIUPNPD_STUN:-$LAB_STUN_SERVER}
	[[ -n $stun ]] || _lab_err "lab_miniupnpd: no STUN server: start coturn on a two-address" \
		"server first (lab_coturn) or set LAB_MINIUPNPD_STUN=IP[:PORT]" || return 1
	n=${LAB_IDX[$site]}
	local upnp=no natpmp=no
	_lab_in upnp "${plist[*]}" && upnp=yes
	{ _lab_in natpmp "${plist[*]}" || _lab_in pcp "${plist[*]}"; } && natpmp=yes
	conf=(
		ext_ifname=wan
		listening_ip=lan
		"http_port=$LAB_UPNPD_HTTP_PORT"
		"enable_upnp=$upnp"
		"enable_natpmp=$natpmp"
		ext_perform_stun=yes
		"ext_stun_host=${stun%:*}"
		"ext_stun_port=$([[ $stun == *:* ]] && echo "${stun##*:}" || echo 3478)"
		ipv6_disable=yes
		secure_mode=yes
		min_lifetime=1
		max_lifetime=3600
		"lease_file=$LAB_DIR/miniupnpd-$site.leases"
		upnp_table_name=lab_upnp
		upnp_nat_table_name=lab_upnp
		"minissdpdsocket=$LAB_DIR/minissdpd-$site.sock"
		system_uptime=no
		"friendly_name=natagent lab $site-gw"
		"uuid=$(printf '6c61622d-7570-4e70-8064-%012x' "$n")"
	)
	for p in "${extra[@]}"; do
		if [[ $p == allow\ * || $p == deny\ * ]]; then
			rules+=("$p")
		elif [[ $p == http_port=* ]]; then
			_lab_err "lab_miniupnpd: set LAB_UPNPD_HTTP_PORT, not http_port"; return 1
		elif [[ $p =~ ^([a-z0-9_]+)= ]]; then
			kept=()
			for c in "${conf[@]}"; do [[ $c == "${BASH_REMATCH[1]}="* ]] || kept+=("$c"); done
			conf=("${kept[@]}" "$p")
		else
			_lab_err "lab_miniupnpd: config line '$p' is neither KEY=VALUE nor allow/deny"; return 1
		fi
	done
	((${#rules[@]})) || rules=("allow 1024-65535 10.$n.0.0/24 1024-65535" "deny 0-65535 0.0.0.0/0 0-65535")
	{
		echo "# miniupnpd on $site-gw, written by lab_miniupnpd (scripts/lab.sh)"
		printf '%s\n' "${conf[@]}" "${rules[@]}"
	} >"$LAB_DIR/miniupnpd-$site.conf" || return 1
	LAB_UPNPD_PROTOS[$site]="${plist[*]}"
	_lab_miniupnpd_start "$site"
}

# _lab_miniupnpd_table ROUTER PROTOS: (re)create table inet lab_upnp: the
# chains miniupnpd fills, and the protocol filter for natpmp or pcp alone.
_lab_miniupnpd_table() {
	local r=$1 protos=$2 v
	local -a off=()
	if _lab_in natpmp "$protos" || _lab_in pcp "$protos"; then
		_lab_in natpmp "$protos" || off+=(0)   # request/response version byte
		_lab_in pcp "$protos" || off+=(2)
	fi
	{
		echo "table inet lab_upnp"
		echo "delete table inet lab_upnp"
		cat <<-EOF
		table inet lab_upnp {
			chain forward {
				type filter hook forward priority filter - 1; policy accept;
				jump miniupnpd
			}
			chain miniupnpd {
			}
			chain prerouting {
				type nat hook prerouting priority dstnat - 1; policy accept;
				jump prerouting_miniupnpd
			}
			chain prerouting_miniupnpd {
			}
			chain postrouting {
				type nat hook postrouting priority srcnat - 1; policy accept;
				jump postrouting_miniupnpd
			}
			chain postrouting_miniupnpd {
			}
		EOF
		if ((${#off[@]})); then
			echo "	chain proto_in {"
			echo "		type filter hook input priority filter - 1; policy accept;"
			for v in "${off[@]}"; do echo "		iifname \"lan\" udp dport 5351 @th,64,8 $v reject"; done
			echo "	}"
			echo "	chain proto_out {"
			echo "		type filter hook output priority filter - 1; policy accept;"
			for v in "${off[@]}"; do echo "		oifname \"lan\" udp sport 5351 @th,64,8 $v drop"; done
			echo "	}"
		fi
		echo "}"
	} | lab_exec "$r" nft -f - || _lab_err "lab_miniupnpd: nft failed on $r"
}

# _lab_upnpd_settled PID LOG: has miniupnpd logged its STUN verdict, or died?
_lab_upnpd_settled() {
	! kill -0 "$1" 2>/dev/null || grep -q 'Port forwarding is now' "$2"
}

# _lab_upnpd_listening SITE: are the sockets of the protocols it serves bound?
_lab_upnpd_listening() {
	local gw="$1-gw" n=${LAB_IDX[$1]} protos=${LAB_UPNPD_PROTOS[$1]}
	if _lab_in upnp "$protos"; then
		[[ -n $(lab_exec "$gw" ss -Hltn "sport = :$LAB_UPNPD_HTTP_PORT" 2>/dev/null) ]] || return 1
	fi
	if _lab_in natpmp "$protos" || _lab_in pcp "$protos"; then
		lab_udp_bound "$gw" "10.$n.0.1" 5351 || return 1
	fi
}

# _lab_miniupnpd_start SITE: start it with the config lab_miniupnpd wrote.
_lab_miniupnpd_start() {
	local site=$1 gw="$1-gw" run log pid verdict
	_lab_miniupnpd_table "$gw" "${LAB_UPNPD_PROTOS[$site]}" || return 1
	run=$((${_LAB_UPNPD_RUNS[$site]:-0} + 1))
	_LAB_UPNPD_RUNS[$site]=$run
	log="$LAB_DIR/miniupnpd-$site.$run.log"
	lab_spawn "$gw" "$log" /usr/sbin/miniupnpd -f "$LAB_DIR/miniupnpd-$site.conf" -d \
		-P "$LAB_DIR/miniupnpd-$site.pid" || return 1
	pid=$LAB_LAST_PID
	LAB_UPNPD_PID[$site]=$pid
	# shellcheck disable=SC2034  # for the caller
	LAB_UPNPD_LOG[$site]=$log
	# The STUN check comes first (up to ~12 s when the answers are filtered),
	# then the HTTP and NAT-PMP/PCP sockets.
	if ! wait_for 20 _lab_upnpd_settled "$pid" "$log" || ! kill -0 "$pid" 2>/dev/null ||
		! wait_for 5 _lab_upnpd_listening "$site"; then
		_lab_err "miniupnpd on $gw did not come up; $log ends:"$'\n'"$(grep -v table_cb "$log" | tail -n 8)"
		lab_miniupnpd_stop "$site"
		return 1
	fi
	verdict=$(grep -o 'Port forwarding is now [a-z]*' "$log" | tail -n 1)
	LAB_UPNPD_FWD[$site]=${verdict##* }
	_lab_log "miniupnpd on $gw (pid $pid): ${LAB_UPNPD_PROTOS[$site]}, forwarding ${LAB_UPNPD_FWD[$site]}"
}

# lab_miniupnpd_mappings SITE: "udp|tcp EXTPORT IP:PORT" per DNAT rule.
lab_miniupnpd_mappings() {
	local site=${1:-} out
	[[ -n ${LAB_IDX[$site]:-} ]] || _lab_err "lab_miniupnpd_mappings: no site '$site'" || return 1
	out=$(lab_exec "$site-gw" nft list chain inet lab_upnp prerouting_miniupnpd 2>/dev/null) || return 0
	# nft prints the protocol match as a raw payload (@nh,72,8 0x11) or, in
	# other versions, by name (meta l4proto udp / ip protocol udp).
	sed -nE 's/.*(@nh,72,8 |l4proto |protocol )(0x11|udp|0x6|0x06|tcp) .*th dport ([0-9]+) dnat ip to ([0-9.]+:[0-9]+).*/\2 \3 \4/p' <<<"$out" |
		sed -E 's/^0x11 /udp /; s/^0x0?6 /tcp /'
}

# lab_miniupnpd_url SITE: its UPnP root description URL.
lab_miniupnpd_url() {
	[[ -n ${LAB_IDX[${1:-}]:-} ]] || _lab_err "lab_miniupnpd_url: no site '${1:-}'" || return 1
	echo "http://10.${LAB_IDX[$1]}.0.1:$LAB_UPNPD_HTTP_PORT/rootDesc.xml"
}

lab_miniupnpd_stop() {
	local site=${1:-} pid gw wan proto eport rest i
	pid=${LAB_UPNPD_PID[$site]:-}
	[[ -n $pid ]] || _lab_err "lab_miniupnpd_stop: no miniupnpd running on '$site'" || return 1
	gw="$site-gw"
	local maps
	maps=$(lab_miniupnpd_mappings "$site")
	kill -TERM "$pid" 2>/dev/null
	wait_for 3 _lab_gone "$pid" || kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	for i in "${!LAB_PIDS[@]}"; do [[ ${LAB_PIDS[i]} == "$pid" ]] && unset 'LAB_PIDS[i]'; done
	LAB_PIDS=("${LAB_PIDS[@]}")
	unset 'LAB_UPNPD_PID[$site]' 'LAB_UPNPD_FWD[$site]'
	lab_exec "$gw" nft delete table inet lab_upnp 2>/dev/null
	rm -f "$LAB_DIR/miniupnpd-$site.leases" "$LAB_DIR/miniupnpd-$site.pid"
	wan=$(lab_exec "$gw" ip -4 -o addr show dev wan | awk '{ sub("/.*", "", $4); print $4; exit }')
	while read -r proto eport rest; do
		[[ -n $eport ]] || continue
		lab_exec "$gw" conntrack -D -p "$proto" --orig-dst "$wan" --orig-port-dst "$eport" >/dev/null 2>&1
	done <<<"$maps"
	_lab_log "miniupnpd on $gw stopped"
	return 0
}

# _lab_gone PID: has the process ended?
_lab_gone() { ! kill -0 "$1" 2>/dev/null; }

lab_miniupnpd_restart() {
	local site=${1:-}
	[[ -n ${LAB_UPNPD_PROTOS[$site]:-} ]] ||
		_lab_err "lab_miniupnpd_restart: miniupnpd was never started on '$site'" || return 1
	if [[ -n ${LAB_UPNPD_PID[$site]:-} ]]; then lab_miniupnpd_stop "$site" || return 1; fi
	_lab_miniupnpd_start "$site"
}

# lab_dump: addresses, routes, rulesets and conntrack of every lab namespace,
# to stderr, for a failing test's log.
lab_dump() {
	local name ns
	for name in "${!LAB_NSMAP[@]}"; do
		ns=${LAB_NSMAP[$name]}
		{
			echo "=== $name ($ns)"
			ip -n "$ns" -br addr
			ip -n "$ns" route
			ip netns exec "$ns" nft list ruleset 2>/dev/null
			ip netns exec "$ns" conntrack -L 2>/dev/null
		} >&2
	done
}

# ---------------------------------------------------------------- cleanup

# lab_traps: run lab_cleanup on exit and on INT/TERM (with the usual exit
# statuses), as every test and benchmark that builds a lab must.
lab_traps() {
	trap lab_cleanup EXIT
	trap 'lab_cleanup; exit 130' INT
	trap 'lab_cleanup; exit 143' TERM
}

# lab_cleanup: remove everything this run made: stop the processes lab_spawn
# started (TERM, then KILL after 3 s; lab_miniupnpd's daemons are among them,
# and their nftables tables, lease and pid files go with the namespaces and the
# temp dir), kill any other process still inside
# this run's namespaces (only this run can have put one there), delete the
# namespaces (their veths, bridge, nft tables go with them) and the temp dir.
# Safe to call twice; keeps the caller's exit status.
lab_cleanup() {
	local rc=$? pid ns i
	local -   # the caller may run under set -e: cleanup must go to the end
	set +e
	((_LAB_CLEANED == 0)) || return $rc
	_LAB_CLEANED=1
	for pid in "${LAB_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for ((i = 0; i < 150; i++)); do   # bounded: 150 x 20 ms
		local alive=0
		for pid in "${LAB_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		((alive)) || break
		sleep 0.02
	done
	for pid in "${LAB_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	for ((i = ${#LAB_NS_ORDER[@]} - 1; i >= 0; i--)); do
		ns=${LAB_NS_ORDER[i]}
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null || echo "lab: could not delete namespace $ns" >&2
	done
	if [[ -n $LAB_DIR && -d $LAB_DIR ]]; then
		if [[ -n ${LAB_KEEP:-} ]]; then echo "lab: kept $LAB_DIR" >&2; else rm -rf "$LAB_DIR"; fi
	fi
	LAB_PIDS=() LAB_NS_ORDER=()
	return $rc
}
