#!/usr/bin/python3
"""Checks port mappings by hand, for tests/netns/miniupnpd_lab.sh.

  upnp_probe.py echo SECONDS PORT...
      On the LAN host: listen on 0.0.0.0:PORT for each PORT, for at most
      SECONDS, and answer every datagram D with "echo D" to its sender.

  upnp_probe.py knock IP PORT TOKEN SRCPORT [TIMEOUT]
      From the internet: send TOKEN from source port SRCPORT to IP:PORT (every
      0.2 s) until "echo TOKEN" comes back or TIMEOUT (default 1) seconds
      pass. Prints "answered" (exit 0) or "silent" (exit 1). A test gives each
      knock its own SRCPORT: a remote ip:port that got in once keeps its
      conntrack entry after the mapping is gone.

  upnp_probe.py pcp SERVER IPORT EPORT LIFETIME [NONCE]
      A PCP (RFC 6887) MAP request for this host's UDP port IPORT, suggesting
      external port EPORT, to SERVER:5351, with mapping nonce NONCE (24 hex
      digits; default random). Renewing or deleting (LIFETIME 0) a mapping
      takes the nonce that made it. Debian has no PCP client; this is just
      enough of one. Prints one line:
        result R lifetime L epoch E eport P eaddr A
      or "refused" (ICMP port unreachable), "timeout", "bad REASON"; exits 0
      only for an answer of result 0 (SUCCESS).
"""
import os
import select
import socket
import struct
import sys
import time


def echo(seconds, ports):
    socks = []
    for p in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", p))
        socks.append(s)
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        for s in select.select(socks, [], [], left)[0]:
            data, src = s.recvfrom(2048)
            s.sendto(b"echo " + data, src)
    return 0


def knock(ip, port, token, srcport, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", srcport))
    want = b"echo " + token.encode()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s.sendto(token.encode(), (ip, port))
        resend = min(end, time.monotonic() + 0.2)
        while (left := resend - time.monotonic()) > 0:
            if not select.select([s], [], [], left)[0]:
                break
            if s.recv(2048) == want:
                print("answered")
                return 0
    print("silent")
    return 1


def mapped_v4(addr):
    """An IPv4 address as the 16-byte IPv4-mapped IPv6 address PCP carries."""
    return b"\0" * 10 + b"\xff\xff" + socket.inet_aton(addr)


def pcp(server, iport, eport, lifetime, nonce):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((server, 5351))
    me = s.getsockname()[0]
    # Common request header: version 2, opcode MAP (1), reserved,
    # requested lifetime, client address. MAP: nonce, protocol, 3 reserved,
    # internal port, suggested external port, suggested external address (none).
    req = struct.pack("!BBHI", 2, 1, 0, lifetime) + mapped_v4(me)
    req += nonce + struct.pack("!B3xHH", 17, iport, eport) + mapped_v4("0.0.0.0")
    end = time.monotonic() + 2.0
    while time.monotonic() < end:   # RFC 6887 retransmits; a short version
        try:
            s.send(req)
        except ConnectionRefusedError:
            print("refused")
            return 1
        if not select.select([s], [], [], 0.5)[0]:
            continue
        try:
            r = s.recv(1100)
        except ConnectionRefusedError:
            print("refused")
            return 1
        if len(r) < 60 or r[0] != 2 or r[1] != 0x81:
            print(f"bad answer {r[:4].hex()} of {len(r)} bytes")
            return 1
        result, life, epoch = r[3], *struct.unpack("!II", r[4:12])
        if r[24:36] != nonce:
            print("bad nonce")
            return 1
        aport = struct.unpack("!H", r[42:44])[0]
        print(f"result {result} lifetime {life} epoch {epoch} eport {aport} eaddr {socket.inet_ntoa(r[56:60])}")
        return 0 if result == 0 else 1
    print("timeout")
    return 1


def main(argv):
    if len(argv) >= 4 and argv[1] == "echo":
        return echo(float(argv[2]), [int(p) for p in argv[3:]])
    if len(argv) in (6, 7) and argv[1] == "knock":
        return knock(argv[2], int(argv[3]), argv[4], int(argv[5]), float(argv[6]) if len(argv) == 7 else 1.0)
    if len(argv) in (6, 7) and argv[1] == "pcp":
        nonce = bytes.fromhex(argv[6]) if len(argv) == 7 else os.urandom(12)
        if len(nonce) != 12:
            print("NONCE must be 24 hex digits", file=sys.stderr)
            return 2
        return pcp(argv[2], int(argv[3]), int(argv[4]), int(argv[5]), nonce)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
