/**
 * Link-layer types of captures and ports: the pcap LINKTYPE_* numbers (tcpdump.org/linktypes.html),
 * shared by the parser and the capture readers and writers. Other values pass through as numbers.
 *
 * @example
 * parser.attach(frame, 0, frame.length, LinkType.Ethernet);
 */
export const LinkType = {
  Ethernet: 1,
  /** Raw IPv4 or IPv6, told apart by the version nibble. */
  RawIp: 101,
  Ipv4: 228,
  Ipv6: 229,
} as const;
export type LinkType = number;

const linkTypeNames: Record<number, string> = { 1: 'ethernet', 101: 'raw-ip', 228: 'ipv4', 229: 'ipv6' };

/** A readable name for a link type. @example linkTypeName(1) === 'ethernet' */
export function linkTypeName(linkType: number): string {
  return linkTypeNames[linkType] ?? `linktype-${linkType}`;
}
