#!/usr/bin/python3
"""Writes a pcap of varied packets with scapy, and a JSON file of the fields scapy put in each.

nfvisor's system test parses the pcap with nfvisor's own parser and compares every field with
what scapy says it wrote: an independent implementation builds the bytes, checksums included.

usage: make-capture.py OUT.pcap OUT.json
"""
import json
import sys

from scapy.all import (ARP, ICMP, IP, TCP, UDP, Dot1AD, Dot1Q, Ether, ICMPv6EchoReply, ICMPv6EchoRequest,
                       IPOption_NOP, IPOption_RR, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                       IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, Raw, wrpcap)
from scapy.layers.vxlan import VXLAN

MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"


def eth(tags=()):
    """Ethernet with zero or more (tpid, vid, prio) tags, outermost first."""
    frame = Ether(src=MAC_A, dst=MAC_B)
    for tpid, vid, prio in tags:
        frame = frame / (Dot1AD(vlan=vid, prio=prio) if tpid == 0x88A8 else Dot1Q(vlan=vid, prio=prio))
    return frame


packets = []


def add(pkt, **expect):
    packets.append((pkt, expect))


payload = Raw(b"nfvisor" * 9)
add(eth() / IP(src="192.0.2.1", dst="198.51.100.7", ttl=61, id=4321) /
    TCP(sport=43210, dport=443, seq=1000, ack=0, flags="S", window=64240,
        options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (123456, 0)), ("NOP", None), ("WScale", 7)]),
    kind="tcp-syn")
add(eth() / IP(src="198.51.100.7", dst="192.0.2.1") / TCP(sport=443, dport=43210, seq=5000, ack=1001, flags="PA") / payload,
    kind="tcp-data")
add(eth() / IP(src="192.0.2.1", dst="198.51.100.7", options=[IPOption_NOP(), IPOption_RR(routers=["10.0.0.1"])]) /
    UDP(sport=40000, dport=9999) / Raw(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"), kind="udp-ipopts")
add(eth([(0x8100, 100, 5)]) / IP(src="10.1.1.1", dst="10.2.2.2") / ICMP(type=8, id=0x77, seq=3) / payload, kind="icmp-vlan")
add(eth([(0x88A8, 200, 3), (0x8100, 300, 7)]) / IP(src="10.1.1.1", dst="10.2.2.2") / UDP(sport=1000, dport=2000) / payload,
    kind="udp-qinq")
add(eth() / IPv6(src="2001:db8::1", dst="2001:db8::2", fl=0x12345, hlim=33) / TCP(sport=1234, dport=80, flags="A") / payload,
    kind="tcp6")
add(eth() / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() /
    UDP(sport=7, dport=9) / payload, kind="udp6-ext")
add(eth() / IPv6(src="2001:db8::1", dst="2001:db8::2") /
    IPv6ExtHdrRouting(addresses=["2001:db8::9"], segleft=1) / ICMPv6EchoRequest(id=9, seq=1, data=b"ping"), kind="icmp6-routing")
add(eth() / IPv6(src="2001:db8::2", dst="2001:db8::1") / ICMPv6EchoReply(id=9, seq=1, data=b"ping"), kind="icmp6-reply")
add(eth() / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(offset=0, m=1, id=0xabcdef) /
    UDP(sport=11, dport=12, len=8 + 64) / Raw(b"x" * 16), kind="udp6-first-fragment")
add(eth() / IP(src="192.0.2.1", dst="198.51.100.7", flags="MF", frag=0, id=99, proto=17) / Raw(b"y" * 24), kind="ipv4-first-fragment")
add(eth() / IP(src="192.0.2.1", dst="198.51.100.7", flags=0, frag=3, id=99, proto=17) / Raw(b"z" * 16), kind="ipv4-later-fragment")
add(eth() / ARP(op=1, hwsrc=MAC_A, psrc="192.0.2.1", pdst="192.0.2.2"), kind="arp")
inner = Ether(src="02:00:00:00:01:01", dst="02:00:00:00:01:02") / IP(src="172.16.0.1", dst="172.16.0.2") / \
    TCP(sport=5555, dport=22, flags="S")
add(eth() / IP(src="192.0.2.10", dst="192.0.2.20") / UDP(sport=49999, dport=4789) / VXLAN(vni=0xABCDE) / inner, kind="vxlan")

records = []
frames = []
for pkt, expect in packets:
    frame = Ether(bytes(pkt))  # build once: checksums and lengths filled in by scapy
    frames.append(frame)
    rec = {"kind": expect["kind"], "length": len(frame), "src_mac": frame.src, "dst_mac": frame.dst}
    tags = []
    layer = frame.payload
    while isinstance(layer, (Dot1Q, Dot1AD)):
        tags.append({"vid": layer.vlan, "pcp": layer.prio})
        layer = layer.payload
    rec["tags"] = tags
    if frame.haslayer(VXLAN):
        rec["vni"] = frame[VXLAN].vni
        frame_inner = frame[VXLAN].payload
    else:
        frame_inner = frame
    if frame_inner.haslayer(IP):
        ip = frame_inner[IP]
        rec.update(ip_version=4, src=ip.src, dst=ip.dst, ttl=ip.ttl, protocol=ip.proto, ip_id=ip.id,
                   more_fragments=bool(ip.flags.MF), fragment_offset=ip.frag * 8, ip_header_length=ip.ihl * 4,
                   ip_checksum=ip.chksum)
    if frame_inner.haslayer(IPv6):
        ip6 = frame_inner[IPv6]
        rec.update(ip_version=6, src=ip6.src, dst=ip6.dst, ttl=ip6.hlim, flow_label=ip6.fl)
        if frame_inner.haslayer(IPv6ExtHdrFragment):
            fr = frame_inner[IPv6ExtHdrFragment]
            rec.update(fragment_offset=fr.offset * 8, more_fragments=bool(fr.m), fragment_id=fr.id)
    if frame_inner.haslayer(TCP):
        t = frame_inner[TCP]
        opts = dict((k, v) for k, v in t.options if k in ("MSS", "WScale", "SAckOK", "Timestamp"))
        rec.update(src_port=t.sport, dst_port=t.dport, seq=t.seq, ack=t.ack, tcp_flags=int(t.flags), window=t.window,
                   tcp_checksum=t.chksum, mss=opts.get("MSS", -1), wscale=opts.get("WScale", -1),
                   sack_permitted="SAckOK" in opts,
                   ts_value=opts["Timestamp"][0] if "Timestamp" in opts else -1)
    elif frame_inner.haslayer(UDP) and not frame_inner.haslayer(IPv6ExtHdrFragment):
        u = frame_inner[UDP]
        rec.update(src_port=u.sport, dst_port=u.dport, udp_length=u.len, udp_checksum=u.chksum)
    elif frame_inner.haslayer(ICMP):
        c = frame_inner[ICMP]
        rec.update(icmp_type=c.type, icmp_code=c.code, icmp_id=c.id, icmp_seq=c.seq)
    elif frame_inner.haslayer(ICMPv6EchoRequest) or frame_inner.haslayer(ICMPv6EchoReply):
        c = frame_inner[ICMPv6EchoRequest] if frame_inner.haslayer(ICMPv6EchoRequest) else frame_inner[ICMPv6EchoReply]
        rec.update(icmp_type=c.type, icmp_code=c.code, icmp_id=c.id, icmp_seq=c.seq)
    if frame.haslayer(ARP):
        a = frame[ARP]
        rec.update(arp_op=a.op, arp_sender=a.psrc, arp_target=a.pdst)
    records.append(rec)

wrpcap(sys.argv[1], frames)
with open(sys.argv[2], "w") as out:
    json.dump(records, out, indent=1)
