#!/usr/bin/python3
"""Builds GENEVE datagrams (RFC 8926) with scapy, as a gateway load balancer would send them to an
appliance: varied VNIs, option TLVs (one critical), OAM, and inner TCP/UDP/ICMP frames.

Writes OUT.pcap (each datagram as Ethernet/IPv4/UDP to port 6081, for tshark to decode) and
OUT.json: for each datagram its UDP payload in hex and the fields scapy put in it.

usage: make-geneve.py OUT.pcap OUT.json
"""
import json
import sys

from scapy.all import ICMP, IP, TCP, UDP, Ether, Raw, wrpcap
from scapy.contrib.geneve import GENEVE, GeneveOptions

GOOD_VNI = 77


def inner(i, proto, dport):
    frame = Ether(src="02:00:00:00:01:%02x" % (i % 256), dst="02:00:00:00:02:01") / IP(
        src="198.18.%d.%d" % (i // 250, 1 + i % 250), dst="198.19.0.80", ttl=64)
    if proto == "tcp":
        return frame / TCP(sport=20000 + i, dport=dport, flags="S", seq=1000 + i)
    if proto == "udp":
        return frame / UDP(sport=30000 + i, dport=dport) / Raw(b"q" * (i % 40))
    return frame / ICMP(type=8, id=i, seq=1) / Raw(b"ping")


def options(i):
    """0 to 3 options: a class/type pair per gateway feature, one of them critical now and then."""
    opts = []
    for k in range(i % 4):
        critical = 0x80 if (k == 1 and i % 8 == 5) else 0
        opts.append(GeneveOptions(classid=0x0100 + k, type=critical | (k + 1),
                                  data=bytes([(i + k) % 256]) * (4 * (1 + k % 2))))
    return opts


datagrams = []
frames = []
for i in range(60):
    proto = ("tcp", "udp", "icmp")[i % 3]
    dport = 22 if (proto == "tcp" and i % 6 == 0) else (80 if proto == "tcp" else 7777)
    vni = GOOD_VNI
    oam = 0
    if i % 20 == 7:
        vni = 78  # another VNI: not this appliance's
    if i % 20 == 13:
        oam = 1  # OAM: not forwarded
    geneve = GENEVE(vni=vni, proto=0x6558, oam=oam, critical=int(any(o.type & 0x80 for o in options(i))),
                    options=options(i))
    payload = bytes(geneve / inner(i, proto, dport))
    frames.append(Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") /
                  IP(src="127.0.0.1", dst="127.0.0.1") / UDP(sport=40000 + i % 2, dport=6081) / Raw(payload))
    datagrams.append({
        "hex": payload.hex(),
        "gateway": i % 2,
        "vni": vni,
        "oam": oam,
        "options": [{"class": o.classid, "type": o.type, "data": bytes(o.data).hex()} for o in options(i)],
        "proto": proto,
        "dport": dport,
        "innerSrc": "198.18.%d.%d" % (i // 250, 1 + i % 250),
    })

wrpcap(sys.argv[1], frames)
with open(sys.argv[2], "w") as f:
    json.dump(datagrams, f)
