#!/usr/bin/env bash
# `make demo`: natagent working, in network namespaces, in well under a minute.
#
# Two homes behind NATs get a direct encrypted path to each other:
#   - a lab (scripts/lab.sh): an "internet" with the rendezvous on it
#     (198.18.0.10:3478, RFC 5780 alternate 198.18.0.11:3479, so that the
#     agents learn how their NATs behave), home "alice" behind a
#     port-restricted NAT (Linux masquerade) whose router runs Debian's
#     miniupnpd (UPnP IGD, NAT-PMP, PCP), and home "bob" behind his home
#     router's NAT behind a carrier-grade NAT (CGNAT), where no router maps;
#   - keys (natctl genkey / pubkey) and WireGuard-style configs for the three
#     hosts, in a directory that stays for you to read (tun mode, no Endpoint:
#     the peers find each other through the rendezvous);
#   - the three natagents starting, and what they log as it happens: the
#     registration at the rendezvous, the session over the relay, the hole
#     punched to a direct path, what each found out about its NAT, alice's
#     port mapping and which addresses the world can reach (AutoNAT);
#   - natctl show's account of the punch (punch:, pair:, verdict:);
#   - a ping through the tunnel both ways, a TCP transfer both ways (iperf3,
#     or an exact transfer where iperf3 is missing), natctl show on both sides;
#   - proof the path is direct: both sides show an `endpoint:`, and the
#     rendezvous relayed nothing during the transfers;
#   - then everything is removed (also on Ctrl-C), or kept with KEEP=1.
#
#   sudo make demo                 run it, then remove the lab (also on Ctrl-C)
#   sudo make demo KEEP=1          leave it running; prints how to look around
#                                  and how to remove it:
#   sudo scripts/demo.sh --down [DIR]   remove a lab kept by KEEP=1 (DIR: the
#                                  demo's output directory; default: the one
#                                  kept lab under /tmp)
#
# Environment: KEEP=1 (above; a failed run is kept too, for a look, while
# Ctrl-C always removes the lab), DEMO_QUICK=1 (for tests: the same steps, a
# shorter transfer, no pauses; else DEMO_PAUSE seconds, default 1, between
# the steps), DEMO_OUT=DIR (where keys, configs and logs go;
# default a new /tmp/natagent-demo.XXXXXX), DEMO_XFER=exact (an exact TCP
# transfer even if iperf3 is installed). Exits non-zero, saying what did not
# come up, if any step fails; every wait is bounded.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
top=$(pwd)
natagent=$top/natagent natctl=$top/natctl
RDV=198.18.0.10 RDV2=198.18.0.11 PORT=40000
KEEP=${KEEP:-} QUICK=${DEMO_QUICK:-}
[[ $KEEP == 0 ]] && KEEP=
[[ $QUICK == 0 ]] && QUICK=
HOSTS=(rdv alice bob)
declare -A IFACE=([rdv]=rdv0 [alice]=nt0 [bob]=nt0)

if [[ -t 1 ]]; then B=$'\033[1m' G=$'\033[32m' R=$'\033[31m' D=$'\033[2m' N=$'\033[0m'
else B='' G='' R='' D='' N=''; fi
say() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
note() { printf '  %s%s%s\n' "$D" "$*" "$N"; }
indent() { sed "s/^/${1:-  }/"; }
pause() { [[ -n $QUICK ]] || sleep "${DEMO_PAUSE:-1}"; }

if [[ $(id -u) != 0 ]]; then
	echo "demo: needs root for network namespaces: sudo make demo" >&2
	exit 1
fi

# ---------------------------------------------------------------- --down

# down [DIR|STATEFILE]: remove a lab that KEEP=1 left running, as its state
# file (written by the kept run, root's) lists it: every process inside its
# namespaces gets TERM (natagent then removes its TUN device, XDP and pins),
# KILL after 5 s; then the namespaces and the lab's temp dir go. Only
# processes inside the demo's own namespaces are touched.
down() {
	local arg=${1:-} state k v ns pid i left
	local nss=() labdir=''
	if [[ -z $arg ]]; then
		local found=(/tmp/natagent-demo.*/demo.state)
		[[ -e ${found[0]} ]] || { echo "demo --down: no kept demo lab under /tmp (give its directory)" >&2; return 1; }
		((${#found[@]} == 1)) || {
			echo "demo --down: several kept labs; give one of: ${found[*]%/demo.state}" >&2; return 1; }
		arg=${found[0]}
	fi
	state=$arg
	[[ -d $state ]] && state=$state/demo.state
	[[ -f $state ]] || { echo "demo --down: no state file $state (already removed?)" >&2; return 1; }
	while read -r k v; do
		case $k in
		ns) [[ $v =~ ^[A-Za-z0-9_.-]+-[A-Za-z0-9]{6}$ ]] && nss+=("$v") ;;
		labdir) [[ $v =~ ^/tmp/natlab-[A-Za-z0-9]{6}\.[A-Za-z0-9]{4}$ ]] && labdir=$v ;;
		esac
	done < "$state"
	for ns in "${nss[@]}"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
	done
	for ((i = 0; i < 250; i++)); do   # bounded: 250 x 20 ms
		left=0
		for ns in "${nss[@]}"; do [[ -z $(ip netns pids "$ns" 2>/dev/null) ]] || left=1; done
		((left)) || break
		sleep 0.02
	done
	for ((i = ${#nss[@]} - 1; i >= 0; i--)); do
		ns=${nss[i]}
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
		if ip netns list | grep -q "^$ns\b"; then
			ip netns del "$ns" || echo "demo --down: could not delete namespace $ns" >&2
		fi
	done
	[[ -z $labdir ]] || rm -rf "$labdir"
	rm -f "$state"
	echo "demo: lab removed (${#nss[@]} namespaces); configs and logs stay in $(dirname "$state")"
}

if [[ ${1:-} == --down ]]; then down "${2:-}"; exit; fi
if [[ $# -gt 0 ]]; then
	echo "usage: scripts/demo.sh            (env KEEP=1, DEMO_QUICK=1, DEMO_OUT=DIR)" >&2
	echo "       scripts/demo.sh --down [DIR]" >&2
	exit 2
fi

for f in "$natagent" "$natctl"; do
	[[ -x $f ]] || { echo "demo: $f is not built: run make (or sudo make demo)" >&2; exit 1; }
done
for t in ip nft python3 /usr/sbin/miniupnpd; do
	command -v "$t" >/dev/null || { echo "demo: $t is missing: sudo make deps" >&2; exit 1; }
done

. scripts/lab.sh
. scripts/agentlab.sh

# ---------------------------------------------------------------- failure, exit

OK='' INTERRUPTED=''
OUT=${DEMO_OUT:-}
START=${EPOCHREALTIME//[!0-9]/}   # microseconds
T0=$START                          # the agents' start, for the events' times

# fail WHAT [HOST...]: say what did not come up, with the tail of the named
# hosts' logs, and exit 1 (the EXIT trap removes the lab).
fail() {
	local h
	printf '\n%sdemo: FAILED: %s%s\n' "$R" "$1" "$N" >&2
	shift
	for h in "$@"; do
		[[ -s $OUT/$h/natagent.log ]] || continue
		echo "  last lines of $OUT/$h/natagent.log:" >&2
		tail -n 8 "$OUT/$h/natagent.log" | indent '    ' >&2
	done
	exit 1
}

# finish (the EXIT trap): remove the lab, or with KEEP=1 keep it (unless
# interrupted) and say how to use and remove it.
finish() {
	local rc=$? ns h
	trap - EXIT
	trap '' INT TERM   # a second Ctrl-C must not cut the cleanup short (it is bounded)
	if [[ -n $OUT && -n ${SUDO_UID:-} && $SUDO_UID =~ ^[0-9]+$ ]]; then
		# Yours to read: keys, configs and logs (not the state file).
		chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$OUT" 2>/dev/null
	fi
	if [[ -n $KEEP && -z $INTERRUPTED && -n $OUT && ${#LAB_NS_ORDER[@]} -gt 0 ]]; then
		{
			echo "# natagent demo lab, kept by KEEP=1; remove it with: scripts/demo.sh --down $OUT"
			for ns in "${LAB_NS_ORDER[@]}"; do echo "ns $ns"; done
			for h in "${HOSTS[@]}"; do [[ -z ${PID[$h]:-} ]] || echo "pid ${PID[$h]} $h"; done
			echo "labdir $LAB_DIR"
		} > "$OUT/demo.state"
		keep_help
		return $rc
	fi
	lab_cleanup
	if [[ -n $OUT ]]; then
		if ((rc == 0)); then echo "Keys, configs and logs stay in $OUT"
		else echo "demo: the lab is removed; its logs are in $OUT" >&2; fi
	fi
	return $rc
}
interrupted() {
	INTERRUPTED=1
	echo; echo "demo: interrupted; removing the lab" >&2
	exit "$1"
}
trap finish EXIT
trap 'interrupted 130' INT
trap 'interrupted 143' TERM

keep_help() {
	local h ns
	cat <<-TXT

	${B}The lab is still running (KEEP=1).${N} Look around:
	TXT
	for h in alice bob rdv; do
		printf '  sudo ip netns exec %-16s bash   # %s\n' "$(lab_ns "$h")" "$(case $h in
			alice) echo "alice: ping 10.77.0.2, ip addr show nt0" ;;
			bob) echo "bob: ping 10.77.0.1" ;;
			rdv) echo "the rendezvous" ;; esac)"
	done
	echo "  natctl show against each agent:"
	for h in alice bob rdv; do
		echo "  sudo env NATAGENT_RUN_DIR=$LAB_DIR/run-$h $natctl show ${IFACE[$h]}"
	done
	echo "  keys, configs, logs: $OUT"
	echo "Remove it all:"
	echo "  sudo $top/scripts/demo.sh --down $OUT"
	echo "or by hand:"
	echo "  sudo kill ${PID[rdv]:-} ${PID[alice]:-} ${PID[bob]:-}"
	echo "  for ns in $(printf '%s\n' "${LAB_NS_ORDER[@]}" | tac | paste -sd' '); do sudo ip netns del \$ns; done"
	echo "  sudo rm -rf $LAB_DIR $OUT/demo.state"
}

# ---------------------------------------------------------------- helpers

declare -A PID=() PUB=() SEEN=()

# ctl HOST [ARGS...]: natctl show against HOST's agent (bounded).
ctl() {
	local h=$1
	shift
	NATAGENT_RUN_DIR=$LAB_DIR/run-$h timeout 5 "$natctl" show "${IFACE[$h]}" "$@" 2>&1
}

# elapsed: seconds since the agents started (T0, microseconds), as " 1.23s".
elapsed() {
	local d=$((${EPOCHREALTIME//[!0-9]/} - T0))
	printf '%2d.%02ds' $((d / 1000000)) $((d / 10000 % 100))
}

# The log lines worth seeing as they come, for a person watching.
EVENTS='rendezvous service|BPF fast path (on|off)|TUN device|registered at rendezvous|session up|punched|no direct path|moving to the relay|nothing heard|public address|discovery|port mapping: [a-z]+ maps|no port mapping|verified: reachable|publicly reachable|not reachable from outside|(warning|error):'

# events: print the new interesting lines of every agent's log, stamped with
# the time they were seen and the host's name; peers' key prefixes become
# their names. A line still being written is left for the next call.
events() {
	local h f n i line p
	for h in "${HOSTS[@]}"; do
		f=$OUT/$h/natagent.log
		[[ -f $f ]] || continue
		n=${SEEN[$h]:-0} i=0
		while IFS= read -r line; do
			i=$((i + 1))
			((i > n)) && [[ $line =~ $EVENTS ]] || continue
			line=${line#natagent: info: }
			line=${line#"${IFACE[$h]}: "}
			for p in alice bob; do
				[[ -z ${PUB[$p]:-} ]] || line=${line//"peer ${PUB[$p]:0:8}:"/"peer $p:"}
			done
			line=${line/, datagrams up to * bytes for now/}
			printf '  %s%s%s  %-5s  %s\n' "$D" "$(elapsed)" "$N" "$h" "$line"
		done < "$f"
		SEEN[$h]=$i
	done
}

# follow TIMEOUT CMD...: print events until CMD succeeds (0) or TIMEOUT
# seconds pass (1). An agent that exits meanwhile fails the demo at once
# (unless STOPPING).
STOPPING=''
follow() {
	local t=$1
	shift
	FOLLOW=("$@")
	wait_for "$t" _follow_step || { events; return 1; }
	events
}
_follow_step() {
	local h
	events
	[[ -n $STOPPING ]] || for h in "${!PID[@]}"; do
		kill -0 "${PID[$h]}" 2>/dev/null || fail "natagent on $h (pid ${PID[$h]}) exited" "$h"
	done
	"${FOLLOW[@]}"
}

logged() { grep -qs -- "$2" "$OUT/$1/natagent.log"; }
both_logged() { logged alice "$1" && logged bob "$1"; }

# spawn HOST [OPT...]: natagent OPT... -c OUT/HOST/IFACE.conf on HOST,
# NATAGENT_RUN_DIR LAB_DIR/run-HOST, log OUT/HOST/natagent.log.
spawn() {
	local h=$1
	shift
	mkdir -p "$LAB_DIR/run-$h"
	lab_spawn "$h" "$OUT/$h/natagent.log" env NATAGENT_RUN_DIR="$LAB_DIR/run-$h" \
		"$natagent" "$@" -c "$OUT/$h/${IFACE[$h]}.conf" || fail "cannot start natagent on $h"
	PID[$h]=$LAB_LAST_PID
}

# forget PID...: stop processes the demo started (TERM, bounded wait, KILL,
# reap) and drop them from lab_cleanup's list, as their PIDs may be reused.
forget() {
	local p keep=()
	stop "$@"
	for p in "${LAB_PIDS[@]}"; do [[ " $* " == *" $p "* ]] || keep+=("$p"); done
	LAB_PIDS=("${keep[@]}")
}

# relayed: datagrams the rendezvous has relayed in all (natctl show).
relayed() {
	local n
	n=$(ctl rdv | sed -nE 's/^  relayed: ([0-9]+) datagrams?.*/\1/p')
	echo "${n:-0}"
}

# ping_one FROM TO IP: ping through the tunnel; prints a summary line.
ping_one() {
	local out sent got rtt count=4
	[[ -n $QUICK ]] && count=3
	out=$(lab_exec "$1" timeout 10 ping -n -c $count -i 0.2 -W 2 "$3" 2>&1)
	sent=$(sed -nE 's/^([0-9]+) packets transmitted.*/\1/p' <<<"$out")
	got=$(sed -nE 's/.* ([0-9]+) (packets )?received.*/\1/p' <<<"$out")
	rtt=$(sed -nE 's#^rtt min/avg/max/mdev = ([0-9.]+)/([0-9.]+)/([0-9.]+)/.*#\1/\2/\3#p' <<<"$out")
	if [[ -z $got || $got == 0 ]]; then
		printf '  %-5s -> %-5s %s: %sno answer%s\n' "$1" "$2" "$3" "$R" "$N"
		return 1
	fi
	printf '  %-5s -> %-5s %s: %s of %s answered, rtt min/avg/max %s ms\n' "$1" "$2" "$3" \
		"$got" "$sent" "$rtt"
}

# iperf FROM TO IP SECONDS [-R]: one iperf3 run through the tunnel against
# the server on TO (from FROM; -R: TO sends); prints a summary line.
iperf() {
	local from=$1 ip=$3 secs=$4 rev=${5:-} out line a=$1 b=$2
	[[ -n $rev ]] && a=$2 b=$1
	out=$(lab_exec "$from" timeout $((secs + 15)) iperf3 -c "$ip" -t "$secs" -f m \
		--connect-timeout 3000 ${rev:+"$rev"} 2>&1)
	line=$(awk '/receiver$/ { split($3, t, "-"); print $5 " " $6 " in " t[2] " s: " $7 " " $8; exit }' <<<"$out")
	if [[ -z $line ]]; then
		printf '  %-5s -> %-5s %sfailed%s\n' "$a" "$b" "$R" "$N"
		tail -n 3 <<<"$out" | indent '    '
		return 1
	fi
	line=${line/Mbits\/sec/Mbit\/s}
	printf '  %-5s -> %-5s %s  (iperf3%s, TCP)\n' "$a" "$b" "$line" "${rev:+ -R}"
}

# exact FROM TO IP BYTES: agentlab's exact transfer (every byte checked);
# prints a summary line with the rate.
exact() {
	local res rc
	xfer "$1" "$2" "$3" "$4" 0 15 "$LAB_DIR/xfer-$1"
	rc=$?
	forget "$XFER_SINK"
	res=$(tail -n 1 "$LAB_DIR/xfer-$1-send.log")
	if ((rc != 0)); then
		printf '  %-5s -> %-5s %sfailed%s: %s\n' "$1" "$2" "$R" "$N" "$res"
		return 1
	fi
	awk -v a="$1" -v b="$2" -v r="$res" 'BEGIN {
		split(r, w, " "); n = w[4] + 0; t = w[6] + 0; if (t < 0.1) t = 0.1
		printf "  %-5s -> %-5s %.0f MBytes in %.1f s: %.0f Mbit/s, every byte checked  (TCP)\n",
			a, b, n / 1048576, t, n * 8 / t / 1e6 }'
}

# ---------------------------------------------------------------- the demo

unset JOURNAL_STREAM
printf '%snatagent demo%s: two homes behind NATs, a rendezvous, a direct encrypted path%s\n' \
	"$B" "$N" "${QUICK:+ (quick)}"

if [[ -z $OUT ]]; then
	OUT=$(mktemp -d /tmp/natagent-demo.XXXXXX) || { echo "demo: cannot make a directory under /tmp" >&2; exit 1; }
else
	mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || { echo "demo: cannot make $OUT" >&2; OUT=; exit 1; }
fi

say "The lab: an internet, a rendezvous on it, two homes behind NATs (network namespaces)"
lab_internet && lab_server rdv "$RDV" "$RDV2" && lab_site alice port && lab_site bob cgnat port ||
	fail "could not build the lab (ip, nft): see the messages above"
rdv_judge || fail "could not add the byte counter on the rendezvous's port (nft)"
row() { printf '  %-10s %-62s %s\n' "$@"; }
row rendezvous "$RDV:3478 (and $RDV2:3479), on the internet" "netns $(lab_ns rdv)"
row alice "$(lab_host_ip alice), behind a port-restricted NAT: $(lab_wan_ip alice)" "netns $(lab_ns alice)"
row "" "  its router runs miniupnpd (UPnP IGD, NAT-PMP, PCP)" "netns $(lab_ns alice-gw)"
row bob "$(lab_host_ip bob), behind a home NAT (100.64.${LAB_IDX[bob]}.2) behind a CGNAT: $(lab_wan_ip bob)" \
	"netns $(lab_ns bob)"
pause

say "Keys and configs, in $OUT"
umask 077
for h in "${HOSTS[@]}"; do
	mkdir -p "$OUT/$h"
	"$natctl" genkey > "$OUT/$h/private.key" && "$natctl" pubkey < "$OUT/$h/private.key" > "$OUT/$h/public.key" ||
		fail "natctl genkey / pubkey failed"
	PUB[$h]=$(cat "$OUT/$h/public.key")
done
echo "  natctl genkey > HOST/private.key; natctl pubkey < HOST/private.key > HOST/public.key"
printf '  %-5s %s\n' rdv "${PUB[rdv]}" alice "${PUB[alice]}" bob "${PUB[bob]}"
cat > "$OUT/rdv/rdv0.conf" <<CONF
[Interface]
PrivateKey = $(cat "$OUT/rdv/private.key")

[Rendezvous]
Listen = $RDV:3478
AlternateListen = $RDV2:3479
CONF
# host_conf HOST ADDR PEER PEER_ADDR
host_conf() {
	cat > "$OUT/$1/nt0.conf" <<-CONF
	[Interface]
	PrivateKey = $(cat "$OUT/$1/private.key")
	ListenPort = $PORT
	Address = $2/24
	Rendezvous = $RDV:3478
	RendezvousKey = ${PUB[rdv]}

	[Peer]
	PublicKey = ${PUB[$3]}
	AllowedIPs = $4/32
	CONF
}
host_conf alice 10.77.0.1 bob 10.77.0.2
host_conf bob 10.77.0.2 alice 10.77.0.1
for h in "${HOSTS[@]}"; do
	"$natagent" -n -c "$OUT/$h/${IFACE[$h]}.conf" || fail "natagent -n rejects $OUT/$h/${IFACE[$h]}.conf"
done
hide() { sed 's/^PrivateKey = .*/PrivateKey = (hidden: private.key)/' "$1" | grep -v '^$' | indent '    '; }
echo "  alice/nt0.conf (bob/nt0.conf is its mirror: 10.77.0.2, peer alice; no Endpoint: they meet"
echo "  through the rendezvous):"
hide "$OUT/alice/nt0.conf"
echo "  rdv/rdv0.conf:"
hide "$OUT/rdv/rdv0.conf"
pause

say "Starting the rendezvous, then alice, then bob (logs: $OUT/HOST/natagent.log)"
T0=${EPOCHREALTIME//[!0-9]/}
spawn rdv -B
follow 10 lab_udp_bound rdv "$RDV" 3478 || fail "the rendezvous did not come up within 10 s" rdv
# miniupnpd checks with STUN (the rendezvous answers it) that its external
# address is really reachable before it maps anything.
LAB_MINIUPNPD_STUN=$RDV:3478 lab_miniupnpd alice upnp natpmp pcp ||
	fail "miniupnpd did not start on alice's router"
note "miniupnpd on alice's router: ${LAB_UPNPD_PROTOS[alice]}, forwarding ${LAB_UPNPD_FWD[alice]}"
spawn alice
follow 10 logged alice "registered at rendezvous" ||
	fail "alice did not register at the rendezvous within 10 s" alice rdv
spawn bob
follow 10 logged bob "registered at rendezvous" || fail "bob did not register at the rendezvous within 10 s" bob rdv
note "natagent pids: rdv ${PID[rdv]}, alice ${PID[alice]}, bob ${PID[bob]}"

say "Meeting through the rendezvous, punching a direct path"
follow 15 both_logged "punched" ||
	fail "no direct path punched within 15 s (natctl show says why: see below)$(printf '\n%s' "$(ctl alice)")" alice bob
note "(the session started on the relay; QUIC path migration moved it onto the punched pair:"
note " no new handshake)"
for h in alice bob; do
	echo "  $h\$ natctl show: the punch"
	ctl "$h" | grep -E '^  (punch|pair|verdict):' | indent '    '
done
note "(\"NAT behaviour unknown\": each side's discovery is still running, below)"
pause

say "Discovery: each agent's public address and NAT behaviour"
note "(RFC 5780 tests against the rendezvous's two addresses; its filtering tests wait out"
note " probes that rightly go unanswered, hence a few seconds)"
follow 20 both_logged "public address" || fail "discovery did not report within 20 s" alice bob
pause

say "Port mapping and reachability (AutoNAT)"
note "(alice asks her router for a mapping by UPnP IGD, PCP and NAT-PMP at once and keeps the"
note " first granted; with it, anyone may send to her port, hence \"full cone\" above. The"
note " rendezvous dials each address back from its second address, which no one has sent to:"
note " a dial-back that arrives proves a stranger gets in. Bob has no router that maps, and"
note " his CGNAT lets no stranger in)"
follow 20 eval 'logged alice "verified: reachable from outside" && logged bob "is not reachable from outside"' ||
	fail "AutoNAT did not judge alice's mapping and bob's address within 20 s$(printf '\n%s' "$(ctl alice | grep -E 'port mapping|reachability')")" alice bob
for h in alice bob; do
	echo "  $h\$ natctl show: port mapping and reachability"
	ctl "$h" | grep -E '^  (port mapping|reachability):' | indent '    '
done
pause

say "Ping through the tunnel, both ways"
ping_one alice bob 10.77.0.2 || fail "alice's ping to bob (10.77.0.2) was not answered" alice bob
ping_one bob alice 10.77.0.1 || fail "bob's ping to alice (10.77.0.1) was not answered" alice bob
pause

r0=$(relayed) b0=$(rdv_bytes)
if command -v iperf3 >/dev/null && [[ ${DEMO_XFER:-} != exact ]]; then
	secs=2
	[[ -n $QUICK ]] && secs=1
	say "TCP through the tunnel, both ways (iperf3, $secs s each way)"
	lab_spawn bob "$LAB_DIR/iperf3.log" iperf3 -s -B 10.77.0.2
	srv=$LAB_LAST_PID
	wait_for 5 eval "[[ -n \$(lab_exec bob ss -Hltn src 10.77.0.2:5201) ]]" ||
		fail "iperf3 -s did not listen on bob within 5 s: $(tail -n 2 "$LAB_DIR/iperf3.log")"
	iperf alice bob 10.77.0.2 $secs || fail "iperf3 alice -> bob failed" alice bob
	iperf alice bob 10.77.0.2 $secs -R || fail "iperf3 bob -> alice failed" alice bob
	forget "$srv"
else
	bytes=$((128 << 20))
	[[ -n $QUICK ]] && bytes=$((32 << 20))
	say "TCP through the tunnel, both ways (an exact transfer of $((bytes >> 20)) MiB each way)"
	exact alice bob 10.77.0.2 $bytes || fail "the transfer alice -> bob failed" alice bob
	exact bob alice 10.77.0.1 $bytes || fail "the transfer bob -> alice failed" alice bob
fi
r1=$(relayed) b1=$(rdv_bytes)
pause

say "natctl show, both sides"
for h in alice bob; do
	echo "  $h\$ natctl show nt0"
	ctl "$h" | indent '    '
done
echo "  rendezvous\$ natctl show rdv0"
ctl rdv | sed -n '/^rendezvous service/,$p' | indent '    '
pause

say "Is the path direct?"
direct=1
for h in alice bob; do
	ep=$(ctl "$h" | sed -nE 's/^  endpoint: //p')
	if [[ -n $ep ]]; then
		other=bob
		[[ $h == bob ]] && other=alice
		printf '  %-5s endpoint: %-18s (%s'"'"'s public address, not the rendezvous)\n' "$h" "$ep" "$other"
	else
		printf '  %-5s %sno endpoint: %s%s\n' "$h" "$R" "$(ctl "$h" | grep -E '^  path:' | sed 's/^ *//')" "$N"
		direct=
	fi
done
printf '  the rendezvous relayed %d datagrams before the transfers, %d after: %s\n' "$r0" "$r1" \
	"$( ((r1 == r0)) && echo "none of them went through it" || echo "$((r1 - r0)) during them")"
printf '  its UDP port 3478 received %d bytes meanwhile (registration keepalives at most)\n' $((b1 - b0))
[[ -n $direct ]] || fail "the path is not direct" alice bob
((r1 == r0)) || fail "the rendezvous relayed $((r1 - r0)) datagrams during the transfers" alice bob rdv
printf '  %s=> direct: home to home, end-to-end encrypted; the rendezvous only introduced them%s\n' "$G" "$N"

# done: the run's duration.
done_in() {
	local d=$((${EPOCHREALTIME//[!0-9]/} - START))
	printf '\n%sdemo: done in %d.%d s%s\n' "$B" $((d / 1000000)) $((d / 100000 % 10)) "$N"
}
if [[ -n $KEEP ]]; then
	OK=1
	done_in
	exit 0
fi

say "Stopping the agents: each closes its sessions, removes its TUN device, routes, XDP and pins"
STOPPING=1
kill -TERM "${PID[bob]}" "${PID[alice]}" 2>/dev/null
EVENTS='BPF fast path off|TUN device|removed|closed|(warning|error):'
follow 10 eval '! kill -0 ${PID[alice]} 2>/dev/null && ! kill -0 ${PID[bob]} 2>/dev/null' ||
	note "(an agent did not stop within 10 s; it is killed now)"
forget "${PID[bob]}" "${PID[alice]}" "${PID[rdv]}"
n=${#LAB_NS_ORDER[@]}
lab_cleanup
echo "  the lab's $n namespaces are deleted (their veths, bridge, NAT rules with them)"
OK=1
done_in
