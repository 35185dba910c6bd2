# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034  # the caller sets natagent...; reads RDV_PID, XFER_*
# natagents in the namespace lab: a rendezvous on the lab's internet and pairs
# of agents in tun mode behind NATs that reach each other through it (no
# Endpoint). The helpers the hole-punching tests and benchmarks share
# (tests/netns/nat_matrix.sh, tests/netns/punch_faults.sh, bench/connect.sh).
# Sourced, never run, after scripts/lab.sh:
#
#   . scripts/lab.sh
#   . scripts/agentlab.sh
#   natagent=/path/natagent natctl=/path/natctl RDV=198.18.0.10 RDV2=198.18.0.11
#   lab_traps; lab_internet && lab_server rdv "$RDV" "$RDV2" && lab_site x port && lab_site y port
#   rdv_judge && rdv_start -d
#   pair_conf "$LAB_DIR/p" 41000 && start "$LAB_DIR/p" x a && start "$LAB_DIR/p" y b
#   path_of "$LAB_DIR/p" a
#
# The caller sets natagent and natctl (the binaries), RDV and RDV2 (the
# rendezvous server's two addresses, lab_server rdv "$RDV" "$RDV2"); LAB_DIR
# is lab.sh's. A pair's files live in one directory DIR: the keys ROLE.key and
# ROLE.pub, the config ROLE/nt0.conf, the log ROLE.log and the control socket's
# run directory run-ROLE, for the roles a (10.77.0.1) and b (10.77.0.2).
#
# API (each function's comment has the details):
#   rdv_judge                         the byte counter on the rendezvous's port
#   rdv_start [OPT...]                keys, config and the rendezvous natagent
#   rdv_bytes                         bytes that reached the rendezvous's port
#   keys DIR NAME...                  a key pair per NAME
#   host_conf DIR ROLE PORT ADDR PEER PEER_ADDR
#                                     a tun-mode config via the rendezvous
#   pair_conf DIR PORT                keys and configs for the roles a and b
#   agent_spawn DIR HOST ROLE [OPT...]   a natagent; does not wait
#   start DIR HOST ROLE               a natagent with -d; waits for "ready"
#   stop PID...                       TERM, a bounded wait, KILL, reap
#   show DIR ROLE                     natctl show nt0 against that agent
#   path_of DIR ROLE / path_in TEXT   direct, relay or none
#   ms_since T0 [T1]                  milliseconds between two epoch times
#   xfer FROM TO TO_IP BYTES SECONDS TIMEOUT LOGBASE
#                                     an exact TCP transfer, waited for
#   xfer_start (same arguments) / xfer_wait LOGBASE
#                                     the same in the background
#
# Like lab.sh, nothing here calls `set -e` or exits: a failure is a non-zero
# status.

[[ -n ${_AGENTLAB_SOURCED:-} ]] && return 0
_AGENTLAB_SOURCED=1

XFER_PORT=5201   # the exact transfer's TCP port on TO_IP

# ---------------------------------------------------------------- rendezvous

# rdv_judge: the judge of "relayed": an nftables counter (inet judge rdv_in)
# of what reaches the rendezvous's QUIC port (UDP 3478) on server rdv.
rdv_judge() {
	lab_exec rdv nft -f - <<-NFT
	table inet judge {
		counter rdv_in {}
		chain in { type filter hook input priority 0; udp dport 3478 counter name rdv_in; }
	}
	NFT
}

# rdv_start [OPT...]: with umask 077 (for the rest of the caller too), keys
# LAB_DIR/rdv.key and rdv.pub, the config LAB_DIR/rdv/rdv0.conf (Listen
# RDV:3478, AlternateListen RDV2:3479, no relay rate limits) and natagent
# OPT... -B on server rdv, logging to LAB_DIR/rdv.log, its control socket in
# LAB_DIR/run-rdv (natctl show rdv0 there; not the host's /run/natagent,
# where another run's rendezvous may be); its PID in RDV_PID. Waits for
# "ready" and the bound QUIC port.
rdv_start() {
	umask 077
	keys "$LAB_DIR" rdv || return 1
	mkdir -p "$LAB_DIR/rdv"
	cat > "$LAB_DIR/rdv/rdv0.conf" <<-CONF
	[Interface]
	PrivateKey = $(cat "$LAB_DIR/rdv.key")
	[Rendezvous]
	Listen = $RDV:3478
	AlternateListen = $RDV2:3479
	RelayRate = 0
	RelayRateTotal = 0
	CONF
	mkdir -p "$LAB_DIR/run-rdv"
	lab_spawn rdv "$LAB_DIR/rdv.log" env NATAGENT_RUN_DIR="$LAB_DIR/run-rdv" \
		"$natagent" "$@" -B -c "$LAB_DIR/rdv/rdv0.conf" || return 1
	RDV_PID=$LAB_LAST_PID
	wait_for 10 grep -qs ready "$LAB_DIR/rdv.log" && wait_for 5 lab_udp_bound rdv "$RDV" 3478
}

# rdv_bytes: bytes that reached the rendezvous's port so far (rdv_judge's
# counter). Bytes, not packets: a sender's UDP GSO batch crosses the veths as
# one packet.
rdv_bytes() {
	lab_exec rdv nft list counter inet judge rdv_in | sed -nE 's/.*bytes ([0-9]+).*/\1/p'
}

# ---------------------------------------------------------------- agents

# keys DIR NAME...: natctl genkey and pubkey into DIR/NAME.key and DIR/NAME.pub.
keys() {
	local dir=$1 n
	shift
	for n in "$@"; do
		"$natctl" genkey > "$dir/$n.key" && "$natctl" pubkey < "$dir/$n.key" > "$dir/$n.pub" || return 1
	done
}

# host_conf DIR ROLE PORT ADDR PEER PEER_ADDR: DIR/ROLE/nt0.conf, a tun-mode
# config with key DIR/ROLE.key, ListenPort PORT and ADDR/24, registered at the
# rendezvous; its one peer DIR/PEER.pub (AllowedIPs PEER_ADDR/32) without
# Endpoint, reached through the rendezvous.
host_conf() {
	mkdir -p "$1/$2"
	cat > "$1/$2/nt0.conf" <<-CONF
	[Interface]
	PrivateKey = $(cat "$1/$2.key")
	ListenPort = $3
	Address = $4/24
	Rendezvous = $RDV:3478
	RendezvousKey = $(cat "$LAB_DIR/rdv.pub")
	[Peer]
	PublicKey = $(cat "$1/$5.pub")
	AllowedIPs = $6/32
	CONF
}

# pair_conf DIR PORT: DIR, the keys of a and b and their configs (host_conf):
# a 10.77.0.1 and b 10.77.0.2, each the other's peer, both on ListenPort PORT.
pair_conf() {
	mkdir -p "$1"
	keys "$1" a b &&
		host_conf "$1" a "$2" 10.77.0.1 b 10.77.0.2 && host_conf "$1" b "$2" 10.77.0.2 a 10.77.0.1
}

# agent_spawn DIR HOST ROLE [OPT...]: natagent OPT... -B -c DIR/ROLE/nt0.conf
# on HOST, NATAGENT_RUN_DIR DIR/run-ROLE, log DIR/ROLE.log; its PID in
# PID_ROLE. Does not wait.
agent_spawn() {
	local dir=$1 host=$2 role=$3
	shift 3
	mkdir -p "$dir/run-$role"
	lab_spawn "$host" "$dir/$role.log" env NATAGENT_RUN_DIR="$dir/run-$role" \
		"$natagent" "$@" -B -c "$dir/$role/nt0.conf" || return 1
	printf -v "PID_$role" '%s' "$LAB_LAST_PID"
}

# start DIR HOST ROLE: agent_spawn with the debug log (-d); waits (5 s) for
# "ready" in the log.
start() {
	agent_spawn "$1" "$2" "$3" -d || return 1
	wait_for 5 grep -qs ready "$1/$3.log"
}

# stop PID...: TERM, a bounded wait, KILL, reap. Empty PIDs are skipped.
stop() {
	local p
	for p in "$@"; do [[ -n $p ]] && kill -TERM "$p" 2>/dev/null; done
	for p in "$@"; do
		[[ -n $p ]] || continue
		wait_exit "$p" 5 || kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
}

# show DIR ROLE: natctl show nt0 against that agent (stderr too).
show() {
	NATAGENT_RUN_DIR=$1/run-$2 "$natctl" show nt0 2>&1
}

# path_in TEXT: direct, relay or none, from a `natctl show` output: direct if
# the peer has an `endpoint:`, relay if its `path: relay via`.
path_in() {
	if grep -q '^  endpoint: ' <<<"$1"; then echo direct
	elif grep -q '^  path: relay via ' <<<"$1"; then echo relay
	else echo none; fi
}

# path_of DIR ROLE: path_in of that agent's `natctl show` now.
path_of() {
	local out
	out=$(show "$1" "$2")
	path_in "$out"
}

# ms_since T0 [T1]: milliseconds from T0 to T1 (default now), both epoch
# seconds ($EPOCHREALTIME, ping -D, tcpdump -tt), truncated to an integer.
ms_since() {
	awk -v a="$1" -v b="${2:-$EPOCHREALTIME}" 'BEGIN { printf "%d", (b - a) * 1000 }'
}

# ---------------------------------------------------------------- transfers

# XFER_PY: an exact TCP transfer, as iperf3 cannot judge one: with -n it stops
# counting at the end of the test, the bytes still in flight uncounted. The
# sink reads to EOF and answers the count and SHA-256 of what it got; the
# source sends BYTES of seeded random data, spread over SECONDS (0: at once),
# and checks the answer. Every wait is bounded by TIMEOUT (a stall longer than
# that fails the transfer).
#   python3 -c "$XFER_PY" sink IP PORT TIMEOUT
#   python3 -c "$XFER_PY" send IP PORT BYTES SECONDS TIMEOUT
XFER_PY='
import hashlib, random, socket, sys, time
mode, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "sink":
    tmo = float(sys.argv[4])
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ip, port)); ls.listen(1); ls.settimeout(tmo)
    print("listening", flush=True)
    c, peer = ls.accept(); c.settimeout(tmo)
    h, n = hashlib.sha256(), 0
    while True:
        b = c.recv(65536)
        if not b:
            break
        h.update(b); n += len(b)
    c.sendall(("%d %s\n" % (n, h.hexdigest())).encode()); c.close()
    print("received %d bytes" % n)
    sys.exit(0)
total, secs, tmo = int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
block = random.Random(total).randbytes(16384)
s = socket.create_connection((ip, port), timeout=tmo); s.settimeout(tmo)
h, sent, t0 = hashlib.sha256(), 0, time.monotonic()
while sent < total:
    if secs > 0:
        due = t0 + secs * sent / total
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
    chunk = block[: min(len(block), total - sent)]
    s.sendall(chunk); h.update(chunk); sent += len(chunk)
s.shutdown(socket.SHUT_WR)
reply = s.makefile().readline().split()
dt = time.monotonic() - t0
got = int(reply[0]) if reply else -1
ok = len(reply) == 2 and got == total and reply[1] == h.hexdigest()
print("sent %d, received %d%s in %.1f s" % (total, got, "" if ok else " (MISMATCH)", dt))
sys.exit(0 if ok else 1)
'

# _xfer_sink TO TO_IP TIMEOUT LOGBASE: the sink on host TO at TO_IP:XFER_PORT,
# log LOGBASE-sink.log; its PID in XFER_SINK. Waits (5 s) until it listens.
_xfer_sink() {
	XFER_SINK=
	lab_spawn "$1" "$4-sink.log" python3 -c "$XFER_PY" sink "$2" "$XFER_PORT" "$3" || return 1
	XFER_SINK=$LAB_LAST_PID
	wait_for 5 grep -qs listening "$4-sink.log"
}

# xfer FROM TO TO_IP BYTES SECONDS TIMEOUT LOGBASE: the transfer from host
# FROM to TO_IP (on host TO), e.g. through the tunnel; logs in
# LOGBASE-{sink,send}.log, the result line last in LOGBASE-send.log. Status 0
# only if every byte arrived intact. The sender is tried even if the sink did
# not report listening (its failure is then the result).
xfer() {
	local rc
	_xfer_sink "$2" "$3" "$6" "$7"
	lab_exec "$1" timeout $(($6 + ${5%.*} + 5)) python3 -c "$XFER_PY" send "$3" "$XFER_PORT" "$4" "$5" "$6" \
		> "$7-send.log" 2>&1
	rc=$?
	[[ -s $7-send.log ]] || echo "no result (exit $rc)" > "$7-send.log"
	stop "$XFER_SINK"
	return $rc
}

# xfer_start FROM TO TO_IP BYTES SECONDS TIMEOUT LOGBASE: the same transfer
# in the background; non-zero (nothing sent) if the sink does not listen. The
# PIDs in XFER_SINK and XFER_SEND. xfer_wait LOGBASE: waits for it; its status
# (0 only if every byte arrived intact), the result line in LOGBASE-send.log.
xfer_start() {
	_xfer_sink "$2" "$3" "$6" "$7" || return 1
	lab_spawn "$1" "$7-send.log" timeout $(($6 + ${5%.*} + 5)) \
		python3 -c "$XFER_PY" send "$3" "$XFER_PORT" "$4" "$5" "$6"
	XFER_SEND=$LAB_LAST_PID
}
xfer_wait() {
	local rc
	wait "$XFER_SEND"; rc=$?
	stop "$XFER_SINK"
	[[ -s $1-send.log ]] || echo "no result (exit $rc)" > "$1-send.log"
	return $rc
}
