/**
 * IP protocol / IPv6 next-header numbers (IANA "Assigned Internet Protocol Numbers"). An `as const`
 * table, not an enum: packets carry values outside it and code must accept them as plain numbers.
 */
export const IpProtocol = {
  HopByHop: 0,
  Icmp: 1,
  Tcp: 6,
  Udp: 17,
  Ipv6Route: 43,
  Ipv6Fragment: 44,
  Esp: 50,
  Ah: 51,
  Icmpv6: 58,
  Ipv6NoNext: 59,
  Ipv6DestOpts: 60,
} as const;
export type IpProtocol = number;

/** EtherType values (IEEE registry) nfvisor parses. */
export const EtherType = {
  Ipv4: 0x0800,
  Arp: 0x0806,
  Vlan: 0x8100,
  QinQ: 0x88a8,
  Ipv6: 0x86dd,
  TransparentEthernet: 0x6558,
} as const;
export type EtherType = number;

/** Well-known UDP ports of the tunnels nfvisor terminates. */
export const UdpPort = { Vxlan: 4789, Geneve: 6081 } as const;
