#!/usr/bin/env bash
# natctl show and natctl show --json against running agents (issue 9),
# compared with golden files as OpenBSD's regress tests compare with .ok
# files: what varies between runs (keys, times, byte and datagram counts,
# RTTs) becomes a placeholder, so the layout, the key names, their order and
# the alignment are pinned. The lab: a rendezvous and two hosts a and b on
# the lab's internet, each the other's peer with a static Endpoint and both
# registered at the rendezvous, so the output has an interface with its
# public address and NAT, a rendezvous registration, a direct peer with
# traffic, and the rendezvous service. Also: natctl show against an
# interface with no natagent says so and exits non-zero.
#
# UPDATE=1 rewrites the golden files from this run (review the diff).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/scripts/lab.sh"
. "$top/scripts/agentlab.sh"
. "$here/lib.sh"

tap_needs
lab_traps

GOLDEN=$here/golden
RDV=198.18.0.10 RDV2=198.18.0.11
declare -A IP=([a]=198.18.0.21 [b]=198.18.0.22) TUN=([a]=10.77.0.1 [b]=10.77.0.2)
lab_internet && lab_server rdv "$RDV" "$RDV2" && lab_server a "${IP[a]}" &&
	lab_server b "${IP[b]}" || tap_bail "cannot build the lab"
rdv_start || tap_bail "no rendezvous: $(tail -n 5 "$LAB_DIR/rdv.log")"
D=$LAB_DIR/p
mkdir -p "$D"
keys "$D" a b || tap_bail "no keys"
for h in a b; do
	o=$([[ $h == a ]] && echo b || echo a)
	mkdir -p "$D/$h"
	cat > "$D/$h/nt0.conf" <<-CONF
	[Interface]
	PrivateKey = $(cat "$D/$h.key")
	ListenPort = 41000
	Address = ${TUN[$h]}/24
	PortMapping = upnp
	Rendezvous = $RDV:3478
	RendezvousKey = $(cat "$LAB_DIR/rdv.pub")
	[Peer]
	PublicKey = $(cat "$D/$o.pub")
	AllowedIPs = ${TUN[$o]}/32
	Endpoint = ${IP[$o]}:41000
	CONF
	chmod 600 "$D/$h/nt0.conf"
done
# b first: whoever dials, the other is there to answer.
start "$D" b b && start "$D" a a || tap_bail "the agents did not start"

show_a() { NATAGENT_RUN_DIR=$D/run-a "$natctl" show nt0 "$@"; }
show_rdv() { NATAGENT_RUN_DIR=$LAB_DIR/run-rdv "$natctl" show rdv0 "$@"; }
# Ready to be pinned: the session direct, discovery's NAT verdict in,
# registered, the rendezvous counting both.
settled() {
	local out
	out=$(show_a) || return 1
	grep -q '^  endpoint: ' <<<"$out" && grep -q '^  public address: .*filtering' <<<"$out" &&
		grep -q '^  rendezvous: .*registered' <<<"$out" &&
		show_rdv | grep -q '^  registered peers: 2$' &&
		grep -q '^  port mapping: upnp: failed: ' <<<"$out" &&
		grep -q '^  reachability: .* public (3 of 3 ' <<<"$out"
}
tap_check "a and b up, direct, discovery done, both registered, a's UPnP given up, its address public" \
	wait_for 30 settled
tap_check "a ping crosses the tunnel (traffic to count)" \
	lab_exec a ping -c 3 -i 0.2 -W 2 "${TUN[b]}"

# normalize: what varies between runs, as placeholders. Keys become
# <KEY_ROLE> (base64 has '+', a quantifier here, and '/': '|' delimits);
# the ports the kernel picks (the rendezvous has no ListenPort) <PORT>.
normalize() {
	local args=() r k
	for r in a b rdv; do
		k=$(cat "$(keyfile "$r")")
		args+=(-e "s|${k//+/\\+}|<KEY_${r^^}>|g")
	done
	sed -E "${args[@]}" \
		-e 's/^(  listening port: |  "listen_port": )[0-9]+/\1<PORT>/' \
		-e 's/just now/<DURATION> ago/g' \
		-e 's/[0-9]+ (second|minute|hour|day)s?(, [0-9]+ (second|minute|hour|day)s?)*/<DURATION>/g' \
		-e 's/rtt [0-9]+\.[0-9]+ ms/rtt <RTT> ms/g' \
		-e 's/[0-9]+(\.[0-9]+)? (B|KiB|MiB|GiB|TiB) (received|sent)/<BYTES> \3/g' \
		-e 's/relayed: [0-9]+ datagrams?, [0-9.]+ (B|KiB|MiB|GiB)/relayed: <N> datagrams, <BYTES>/' \
		-e 's/"(session_age_ms|rendezvous_age_ms|rtt_us|tx_bytes|rx_bytes|tx_dgrams|rx_dgrams|relayed_dgrams|relayed_bytes|checked_ms|asked_ms|autonat_requests|autonat_dialed)": [0-9]+/"\1": <N>/' \
		-e 's/("autonat_from": "[0-9.]+:)[0-9]+/\1<PORT>/' \
		-e 's/(dial-backs from [0-9.]+:)[0-9]+, [0-9]+ requests?, [0-9]+ addresse?s? dialed/\1<PORT>, <N> requests, <N> addresses dialed/'
}
keyfile() { [[ $1 == rdv ]] && echo "$LAB_DIR/rdv.pub" || echo "$D/$1.pub"; }

# golden NAME CMD...: CMD's output, normalised, against golden/NAME.
golden() {
	local name=$1 out rc
	shift
	out=$("$@" 2>&1); rc=$?
	out=$(normalize <<<"$out")
	if [[ -n ${UPDATE:-} ]]; then
		mkdir -p "$GOLDEN"
		printf '%s\n' "$out" > "$GOLDEN/$name"
	fi
	if ((rc != 0)); then
		tap_fail "$name: $* exits 0" "exit $rc"$'\n'"$out"
		return
	fi
	local diff
	diff=$(diff -u "$GOLDEN/$name" - <<<"$out" 2>&1)
	if [[ -z $diff ]]; then tap_ok "$name: $* matches golden/$name"
	else tap_fail "$name: $* matches golden/$name" "$diff"; fi
}
golden show-a.txt show_a
golden show-a.json show_a --json
golden show-rdv.txt show_rdv
golden show-rdv.json show_rdv --json

# The placeholders hide values, never lines: with them undone, the counts
# that must be there are.
tap_check "the unmasked output has the ping's bytes both ways" \
	eval 'show_a | grep -qE "^  transfer: [0-9.]+ (B|KiB) received, [0-9.]+ (B|KiB) sent$"'

# No natagent for the interface: a clear error, exit status not 0.
mkdir -p "$LAB_DIR/run-none"
for args in "" "--json"; do
	out=$(NATAGENT_RUN_DIR=$LAB_DIR/run-none "$natctl" show nt0 $args 2>"$LAB_DIR/err"); rc=$?
	err=$(cat "$LAB_DIR/err")
	tap_diag "natctl show nt0 $args without natagent (exit $rc): $err"
	tap_check "natctl show nt0 $args without natagent: exit non-zero, nothing on stdout" \
		test "$rc" != 0 -a -z "$out"
	tap_is "... and the error names the socket and asks whether natagent runs" "$err" \
		"natctl: cannot connect to $LAB_DIR/run-none/nt0.sock: No such file or directory (is natagent running for nt0?)"
done
tap_done
