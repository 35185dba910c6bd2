#!/usr/bin/python3
"""A UPnP IGD (v1) that grants only permanent leases, for
tests/netns/upnp_permanent.sh.

  igd_permanent.py LAN_IP WAN_IP WAN_IFACE HTTP_PORT

Many home routers answer AddPortMapping with a lease other than 0 by error
725 OnlyPermanentLeasesSupported (the IGDv1 spec allowed only permanent
leases, and some firmware kept that rule). Debian's miniupnpd has no setting
that makes it do so, so this stands in for such a router: it answers SSDP
searches on LAN_IP, serves a root description and the WANIPConnection:1
actions a client needs, and installs each mapping it grants as a real
nftables DNAT (table ip lab_igdperm, removed on exit) from WAN_IFACE, so
that what it grants really forwards.

Every action is logged on stdout, one line each, for the test to check:
  AddPortMapping UDP EXT -> IP:PORT lease L: ok | 725 | 718
  DeletePortMapping UDP EXT: ok | 714
  GetSpecificPortMappingEntry UDP EXT: ok | 714
"""
import http.server
import re
import signal
import socket
import struct
import subprocess
import sys
import threading

LAN, WAN, WAN_IF, PORT = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
TABLE = "lab_igdperm"
SVC = "urn:schemas-upnp-org:service:WANIPConnection:1"
ERRORS = {401: "Invalid Action", 402: "Invalid Args", 714: "NoSuchEntryInArray",
          718: "ConflictInMappingEntry", 725: "OnlyPermanentLeasesSupported"}

mappings = {}   # (proto, ext) -> (client, port, desc)
lock = threading.Lock()


def log(msg):
    print(msg, flush=True)


def nft(script):
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True)


def dnat_rules():
    rules = [f"iifname \"{WAN_IF}\" {p.lower()} dport {e} dnat to {c}:{i}"
             for (p, e), (c, i, _) in sorted(mappings.items())]
    body = "\n".join("\t\t" + r for r in rules)
    nft(f"flush chain ip {TABLE} prerouting\n"
        f"table ip {TABLE} {{\n\tchain prerouting {{\n{body}\n\t}}\n}}\n")


ROOT = f"""<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<specVersion><major>1</major><minor>0</minor></specVersion>
<device>
<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<friendlyName>permanent-leases-only router</friendlyName>
<UDN>uuid:6e617461-6765-6e74-2d69-676470657231</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
<UDN>uuid:6e617461-6765-6e74-2d69-676470657232</UDN>
<serviceList><service>
<serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANCommonIFC1</serviceId>
<SCPDURL>/cif.xml</SCPDURL><controlURL>/ctl/CmnIfCfg</controlURL>
<eventSubURL>/evt/CmnIfCfg</eventSubURL>
</service></serviceList>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
<UDN>uuid:6e617461-6765-6e74-2d69-676470657233</UDN>
<serviceList><service>
<serviceType>{SVC}</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<SCPDURL>/ipc.xml</SCPDURL><controlURL>/ctl/IPConn</controlURL>
<eventSubURL>/evt/IPConn</eventSubURL>
</service></serviceList>
</device></deviceList>
</device></deviceList>
</device>
</root>
"""


def envelope(inner):
    return ('<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
            's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
            + inner + '</s:Body></s:Envelope>\r\n')


def action(name, args):
    """Returns (UPnP error code or 0, response arguments)."""
    proto = args.get("NewProtocol", "UDP").upper()
    ext = int(args.get("NewExternalPort", "0") or 0)
    if name == "GetStatusInfo":
        return 0, {"NewConnectionStatus": "Connected", "NewLastConnectionError": "ERROR_NONE",
                   "NewUptime": "100"}
    if name == "GetConnectionTypeInfo":
        return 0, {"NewConnectionType": "IP_Routed", "NewPossibleConnectionTypes": "IP_Routed"}
    if name == "GetExternalIPAddress":
        return 0, {"NewExternalIPAddress": WAN}
    if name == "AddPortMapping":
        client, iport = args.get("NewInternalClient", ""), int(args.get("NewInternalPort", "0"))
        lease = int(args.get("NewLeaseDuration", "0") or 0)
        what = f"AddPortMapping {proto} {ext} -> {client}:{iport} lease {lease}"
        if lease != 0:
            log(what + ": 725")
            return 725, {}
        held = mappings.get((proto, ext))
        if held and held[0] != client:
            log(what + ": 718")
            return 718, {}
        mappings[(proto, ext)] = (client, iport, args.get("NewPortMappingDescription", ""))
        dnat_rules()
        log(what + ": ok")
        return 0, {}
    if name == "DeletePortMapping":
        gone = mappings.pop((proto, ext), None)
        if gone:
            dnat_rules()
        log(f"DeletePortMapping {proto} {ext}: {'ok' if gone else '714'}")
        return (0 if gone else 714), {}
    if name == "GetSpecificPortMappingEntry":
        held = mappings.get((proto, ext))
        log(f"GetSpecificPortMappingEntry {proto} {ext}: {'ok' if held else '714'}")
        if not held:
            return 714, {}
        return 0, {"NewInternalPort": str(held[1]), "NewInternalClient": held[0],
                   "NewEnabled": "1", "NewPortMappingDescription": held[2],
                   "NewLeaseDuration": "0"}
    log(f"{name}: 401")
    return 401, {}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, body, ctype='text/xml; charset="utf-8"'):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/rootDesc.xml":
            self.reply(200, ROOT)
        else:
            self.reply(404, "")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n).decode(errors="replace")
        name = self.headers.get("SOAPAction", "").strip('"').rpartition("#")[2]
        args = dict(re.findall(r"<(New\w+)>([^<]*)</\1>", body))
        with lock:
            code, out = action(name, args)
        if code:
            fault = ('<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>'
                     '<detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0">'
                     f'<errorCode>{code}</errorCode><errorDescription>{ERRORS.get(code, "")}'
                     '</errorDescription></UPnPError></detail></s:Fault>')
            self.reply(500, envelope(fault))
            return
        inner = "".join(f"<{k}>{v}</{k}>" for k, v in out.items())
        self.reply(200, envelope(f'<u:{name}Response xmlns:u="{SVC}">{inner}</u:{name}Response>'))


def ssdp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 1900))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 struct.pack("4s4s", socket.inet_aton("239.255.255.250"), socket.inet_aton(LAN)))
    while True:
        data, src = s.recvfrom(2048)
        text = data.decode(errors="replace")
        if not text.startswith("M-SEARCH"):
            continue
        m = re.search(r"^ST:\s*(\S+)", text, re.M | re.I)
        st = m.group(1) if m else "upnp:rootdevice"
        if st not in ("ssdp:all", "upnp:rootdevice") and "InternetGatewayDevice" not in st \
                and "WANIPConnection:1" not in st and "WANDevice" not in st:
            continue
        s.sendto((f"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: {st}\r\n"
                  f"USN: uuid:6e617461-6765-6e74-2d69-676470657231::{st}\r\nEXT:\r\n"
                  f"SERVER: Linux UPnP/1.0 igd_permanent/1\r\n"
                  f"LOCATION: http://{LAN}:{PORT}/rootDesc.xml\r\n\r\n").encode(), src)


def main():
    nft(f"table ip {TABLE} {{\n\tchain prerouting {{\n"
        "\t\ttype nat hook prerouting priority dstnat - 2; policy accept;\n\t}\n}\n")

    def stop(*_):
        subprocess.run(["nft", "delete", "table", "ip", TABLE])
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server = http.server.ThreadingHTTPServer((LAN, PORT), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Thread(target=ssdp, daemon=True).start()
    log(f"ready on {LAN}:{PORT}")
    signal.pause()


if __name__ == "__main__":
    main()
