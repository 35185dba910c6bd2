"""RFC 8489 STUN probe for tests/netns/bpf_xdp_stun.sh.

Debian's `stun` client speaks only RFC 3489 over IPv4; this covers what it
cannot: the magic-cookie request with FINGERPRINT over IPv4 and IPv6, and
natagent's keepalive (a Binding indication carrying PATH-TOKEN 0xC0A7).
The receiving kernel checks the answer's UDP checksum before we see it.

  stun_probe.py bind SERVER PORT SRCPORT
      prints "mapped ADDR PORT" after checking type, transaction id and
      FINGERPRINT of the response
  stun_probe.py keepalive SERVER PORT SRCPORT TOKEN_HEX
      prints "silent" if nothing comes back (absorbed), "refused" if an
      ICMP port unreachable does (passed to a stack with no socket)
"""
import ipaddress
import os
import socket
import struct
import sys
import zlib

MAGIC = 0x2112A442


def with_fingerprint(msg_type, txid, attrs):
    # The length field counts FINGERPRINT before the CRC is taken.
    head = struct.pack("!HHI12s", msg_type, len(attrs) + 8, MAGIC, txid)
    crc = zlib.crc32(head + attrs) ^ 0x5354554E
    return head + attrs + struct.pack("!HHI", 0x8028, 4, crc)


def sock_for(server, port, srcport, timeout):
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind(("", srcport))
    s.connect((server, port))
    s.settimeout(timeout)
    return s


def parse_response(r, txid):
    mtype, mlen, magic, rtxid = struct.unpack("!HHI12s", r[:20])
    if mtype != 0x0101 or magic != MAGIC or rtxid != txid or mlen != len(r) - 20:
        sys.exit("bad response header")
    mapped, fingerprint_ok, off = None, False, 20
    while off + 4 <= len(r):
        atype, alen = struct.unpack("!HH", r[off:off + 4])
        val = r[off + 4:off + 4 + alen]
        if atype == 0x0020:
            port = struct.unpack("!H", val[2:4])[0] ^ (MAGIC >> 16)
            mask = struct.pack("!I", MAGIC) + txid
            raw = bytes(a ^ b for a, b in zip(val[4:], mask))
            mapped = (ipaddress.ip_address(raw), port)
        elif atype == 0x8028:
            want = zlib.crc32(r[:off]) ^ 0x5354554E
            fingerprint_ok = struct.unpack("!I", val)[0] == want
        off += 4 + (alen + 3) // 4 * 4
    if not mapped or not fingerprint_ok:
        sys.exit("response lacks XOR-MAPPED-ADDRESS or a valid FINGERPRINT")
    return mapped


def bind(server, port, srcport):
    s = sock_for(server, port, srcport, 3)
    txid = os.urandom(12)
    s.send(with_fingerprint(0x0001, txid, b""))
    addr, mport = parse_response(s.recv(2048), txid)
    print("mapped %s %d" % (addr, mport))


def keepalive(server, port, srcport, token):
    s = sock_for(server, port, srcport, 1)
    attr = struct.pack("!HHQ", 0xC0A7, 8, token)
    s.send(with_fingerprint(0x0011, os.urandom(12), attr))
    try:
        s.recv(2048)
        print("answered")
    except ConnectionRefusedError:
        print("refused")
    except socket.timeout:
        print("silent")


def main():
    cmd, server, port, srcport = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if cmd == "bind":
        bind(server, port, srcport)
    else:
        keepalive(server, port, srcport, int(sys.argv[5], 16))


main()
