#!/usr/bin/python3
"""Checks a NAT's mapping and filtering by hand, independently of any STUN code.

  udp_probe.py reflect IP1 IP2 PORT SECONDS
      Listen on IP1:PORT ("base"), IP1:PORT+1 ("port") and IP2:PORT ("addr")
      for at most SECONDS. A datagram "probe" on base is answered from all
      three sockets, "addr" and "port" first, "base" last. A datagram "map" on
      any socket is answered from that socket. Every answer carries the source
      address the reflector saw ("seen IP:PORT").

  udp_probe.py probe IP1 IP2 PORT
      Filtering: one socket sends "probe" to base and reports which of the
      three answers came back. Mapping: another socket sends "map" to base and
      to addr and reports the two addresses seen. Prints, one per line:
        local IP:PORT          the filtering socket's own address
        recv base port addr    the answers that got through (base always should)
        map1 IP:PORT           what base saw of the mapping socket
        map2 IP:PORT           what addr saw of it
        maplocal IP:PORT       the mapping socket's own address
      Exits 1 if base never answers.

Bounded everywhere: retries and waits have deadlines. Only the reflector's
answers are awaited, and the answers that may be filtered are sent before
"base" over the same path, so once "base" is in, the others had their chance;
a short grace covers reordering anyway.
"""
import select
import socket
import sys
import time

GRACE = 0.3      # seconds to wait for stragglers after "base" answered
RETRY = 0.25     # resend interval
DEADLINE = 3.0   # give up on a silent reflector after this long


def reflect(ip1, ip2, port, seconds):
    socks = {}
    for label, addr in (("base", (ip1, port)), ("port", (ip1, port + 1)), ("addr", (ip2, port))):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(addr)
        socks[label] = s
    byfd = {s.fileno(): (label, s) for label, s in socks.items()}
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select(list(byfd), [], [], left)
        for fd in ready:
            label, s = byfd[fd]
            data, src = s.recvfrom(2048)
            seen = f"seen {src[0]}:{src[1]}".encode()
            if data == b"probe" and label == "base":
                for answer in ("addr", "port", "base"):
                    socks[answer].sendto(answer.encode() + b" " + seen, src)
            elif data == b"map":
                s.sendto(b"map " + seen, src)


def exchange(sock, dest, payload, want):
    """Send payload to dest until an answer starting with want arrives; return
    every answer received meanwhile."""
    got = []
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        sock.sendto(payload, dest)
        resend = time.monotonic() + RETRY
        while (left := min(resend, end) - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                break
            data = sock.recv(2048).decode()
            got.append(data)
            if data.startswith(want):
                return got
    return None


def probe(ip1, ip2, port):
    t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t.connect((ip1, port))          # learn the local address the route gives
    local_ip = t.getsockname()[0]
    t.close()
    f = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    f.bind((local_ip, 0))
    local = f.getsockname()
    got = exchange(f, (ip1, port), b"probe", "base ")
    if got is None:
        print("recv none")
        return 1
    end = time.monotonic() + GRACE
    while (left := end - time.monotonic()) > 0:
        if not select.select([f], [], [], left)[0]:
            break
        got.append(f.recv(2048).decode())
    labels = {g.split()[0] for g in got}
    print(f"local {local[0]}:{local[1]}")
    print("recv " + " ".join(l for l in ("base", "port", "addr") if l in labels))

    m = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    m.bind((local_ip, 0))
    for name, ip in (("map1", ip1), ("map2", ip2)):
        got = exchange(m, (ip, port), b"map", "map ")
        print(f"{name} " + (got[-1].split()[-1] if got else "none"))
    print("maplocal %s:%d" % m.getsockname())
    return 0


def main(argv):
    if len(argv) == 6 and argv[1] == "reflect":
        reflect(argv[2], argv[3], int(argv[4]), float(argv[5]))
        return 0
    if len(argv) == 5 and argv[1] == "probe":
        return probe(argv[2], argv[3], int(argv[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
