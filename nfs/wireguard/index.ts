/**
 * wireguard: a WireGuard VPN gateway (whitepaper: "WireGuard: Next Generation Kernel Network
 * Tunnel"), interoperable with wireguard-go and the kernel's implementation.
 *
 * Two sides, told apart by content, not by port: a frame carrying IPv4/UDP to `listenAddress:
 * listenPort` is a WireGuard message from the outside; any other IP frame addressed to the inside
 * MAC is traffic from the inside, routed by the peers' allowed IPs into the tunnel. Both kinds may
 * arrive on one port (a one-armed gateway) or on two.
 *
 *   outside ── initiation ──▶ rewritten in place into the response ──▶ outside
 *   outside ── response ────▶ rewritten into the first staged packet (or a keepalive) ──▶ outside
 *   outside ── data ────────▶ decrypted, source checked, new Ethernet header ──▶ inside
 *   inside ─── IP packet ───▶ encrypted to the peer owning the destination ──▶ outside
 *                            (no session: copied to the peer's staging area, rewritten into an
 *                             initiation — at most one per REKEY_TIMEOUT — or dropped as staged)
 *
 * What answers a packet is sent in that packet: the response and cookie reply in the message they
 * answer, the initiation in the inside packet that needs it, the handshake-confirming keepalive (or
 * first staged packet) in the response. When a response arrives with several packets staged, the
 * first is sent in it and the rest are discarded and counted (`staged_discarded`): the senders'
 * transports retransmit them. What the timers send (whitepaper §6, wireguard-go's timers.go) the NF
 * makes itself (`ctx.emit`, checked at every tick):
 *
 *   handshake retry     no response REKEY_TIMEOUT after an initiation, until REKEY_ATTEMPT_TIME
 *   passive keepalive   data received and nothing sent back for KEEPALIVE_TIMEOUT
 *   new handshake       data sent and nothing authenticated received for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT
 *   persistent keepalive  `persistentKeepalive` seconds without any authenticated packet either way
 *                       (with no session, an initiation instead: the tunnel comes up on its own)
 *   fresh keys          data received on a session we initiated that is 165 s old (REJECT_AFTER_TIME
 *                       − KEEPALIVE_TIMEOUT − REKEY_TIMEOUT): a new handshake before the keys expire
 *
 * Security: a message whose mac1 fails is dropped before any public-key work; nothing that fails
 * to authenticate gets an answer; under load (more handshake messages per second than
 * `handshakesUnderLoad`) a message without a valid mac2 gets a cookie reply and nothing else.
 * Each forged or replayed case has its own drop reason. The private key never leaves `create()`:
 * not in logs, counters, snapshots or the compiled plan; snapshots hold public keys, endpoints,
 * byte counts and the greatest timestamp seen per peer — never session keys (after a restart,
 * peers handshake again).
 */
import { formatIpv4, parseIpv4, parseMac } from '../../src/packet/address.js';
import { read16, read32, write16, write32 } from '../../src/packet/bytes.js';
import { internetChecksum, pseudoHeaderSumV4 } from '../../src/packet/checksum.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { FlowKey } from '../../src/packet/flow-key.js';
import { FragmentResult, FragmentStat, FragmentTable } from '../../src/packet/fragment-table.js';
import { EtherType, IpProtocol } from '../../src/packet/ip-protocol.js';
import { Layer, PacketParser } from '../../src/packet/packet-parser.js';
import { Rejecter } from '../../src/packet/reject.js';
import { defineNf, type NfInstance } from '../../src/sdk/index.js';
import { AllowedIps } from './allowed-ips.js';
import { checkMac1, CookieChecker, CookieJar, writeMac1 } from './cookie.js';
import { compareTimestamps, decodeKey, encodeKey, MAC_LENGTH, TIMESTAMP_LENGTH } from './crypto.js';
import {
  CookieReply,
  Data,
  Initiation,
  MessageType,
  readLe32,
  Response,
  writeLe32,
  writeType,
} from './messages.js';
import {
  localIdentity,
  readInitiation,
  readResponse,
  remoteIdentity,
  writeInitiation,
  writeResponse,
  type InitiatorHandshake,
  type LocalIdentity,
  type RemoteIdentity,
} from './noise.js';
import { ReplayWindow } from './replay-window.js';
import {
  INITIATION_MIN_INTERVAL,
  REJECT_AFTER_MESSAGES_HI,
  REJECT_AFTER_MESSAGES_LO,
  REJECT_AFTER_TIME,
  REKEY_AFTER_MESSAGES_HI,
  REKEY_AFTER_TIME,
  KEEPALIVE_TIMEOUT,
  REKEY_ATTEMPT_TIME,
  REKEY_TIMEOUT,
} from './timers.js';
import { paddedLength, TransportCipher, transportKey } from './transport.js';
import type { KeyObject } from 'node:crypto';
import { randomFillSync } from 'node:crypto';

export interface WireguardPeerConfig {
  publicKey: string;
  presharedKey: string;
  endpoint: string;
  allowedIPs: string[];
  persistentKeepalive: number;
}

export interface WireguardConfig {
  privateKey: string;
  listenAddress: string;
  listenPort: number;
  outside: { mac: string; nextHopMac: string };
  inside: { mac: string; nextHopMac: string };
  peers: WireguardPeerConfig[];
  stagedPackets: number;
  handshakesUnderLoad: number;
}

/** A peer as `peers()` and snapshots show it: nothing secret. */
export interface WireguardPeerStatus {
  publicKey: string;
  /** `address:port` the peer was last heard from (or configured), '' when unknown. */
  endpoint: string;
  /** WireGuard message bytes (UDP payload) received from the peer and authenticated. */
  rxBytes: number;
  /** WireGuard message bytes sent to the peer. */
  txBytes: number;
  /** When the last handshake completed (ns), 0 for never. */
  lastHandshake: number;
  /** The greatest initiation timestamp accepted from the peer (TAI64N, hex), '' for none. */
  greatestTimestamp: string;
}

export interface WireguardSnapshot {
  version: 1;
  peers: WireguardPeerStatus[];
  /** Each peer's endpoint as configured (public key → text): a restore under a configuration that
   *  changed it keeps the new one; otherwise the endpoint learned by roaming wins. */
  configured?: Record<string, string>;
}

export interface WireguardInstance extends NfInstance {
  peers(): WireguardPeerStatus[];
  /** The compiled configuration, for `nfvisor` to print (public facts only). */
  readonly plan: { publicKey: string; listen: string; peers: number };
}

/** Receiving on a session we initiated this old starts a new handshake (wireguard-go's keepKeyFreshReceiving). */
const KEYS_GETTING_OLD = REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT;

/** Frame layout of everything this NF emits towards the outside: Ethernet, IPv4 (no options), UDP. */
const ETH = 14;
const OUTER_IP = ETH;
const OUTER_UDP = OUTER_IP + 20;
const MESSAGE = OUTER_UDP + 8;
const TTL = 64;
/**
 * Outer fragment reassembly: messages in reassembly at once, the memory their bytes may take, the
 * largest message (a jumbo tunnel's data message fits), and how long a message may take to
 * complete (Linux's ipfrag_time).
 */
const OUTER_FRAGMENT_DATAGRAMS = 64;
const OUTER_FRAGMENT_BYTES = 1 << 20;
const OUTER_FRAGMENT_DATAGRAM_BYTES = 16 * 1024;
const OUTER_FRAGMENT_TIMEOUT_S = 30;
const ENDPOINT = /^(\d{1,3}(?:\.\d{1,3}){3}):([1-9][0-9]{0,4})$/;

/** One session's keys and counters. */
interface Keypair {
  peer: number;
  localIndex: number;
  remoteIndex: number;
  send: KeyObject;
  receive: KeyObject;
  sendHi: number;
  sendLo: number;
  window: ReplayWindow;
  createdAt: number;
  initiator: boolean;
}

class Peer {
  endpointKnown = false;
  endpointAddr = 0;
  endpointPort = 0;
  readonly greatestTimestamp = new Uint8Array(TIMESTAMP_LENGTH);
  hasTimestamp = false;
  lastInitiationAt = -Infinity;
  handshake: InitiatorHandshake | null = null;
  handshakeSentAt = -Infinity;
  handshakeStartedAt = -1;
  /** The confirmed session, the one before it (still accepted), and an unconfirmed responder session. */
  current: Keypair | null = null;
  previous: Keypair | null = null;
  next: Keypair | null = null;
  /** Staging ring: `stagedCount` IP packets from `stagedHead`, each in a slot of `stageSlot` bytes. */
  staged: Uint8Array | null = null;
  stageSlot = 0;
  readonly stagedLength: Uint32Array;
  stagedHead = 0;
  stagedCount = 0;
  rxBytes = 0;
  txBytes = 0;
  lastHandshake = 0;
  /** Timers (ns; -1: not running). Any authenticated packet, either way; the last one sent. */
  lastTraversal = -1;
  lastSent = -1;
  /** Data received since we last sent anything: a keepalive is owed KEEPALIVE_TIMEOUT after it. */
  unansweredSince = -1;
  /** Data sent since we last received anything authenticated: a new handshake is due after 15 s. */
  awaitingReplySince = -1;
  /** Seconds between persistent keepalives (0: off). */
  persistentKeepalive = 0;
  /** Data arrived on an initiator session near its end of life: the next tick starts a handshake. */
  keysGettingOld = false;
  /** The endpoint as the configuration gives it ('' for none). */
  configuredEndpoint = '';

  constructor(
    readonly index: number,
    readonly publicKeyText: string,
    readonly remote: RemoteIdentity,
    readonly jar: CookieJar,
    stagedPackets: number,
  ) {
    this.stagedLength = new Uint32Array(stagedPackets);
  }
}

function parseEndpoint(text: string, where: string): [number, number] {
  const m = ENDPOINT.exec(text);
  const address = m ? parseIpv4(m[1]) : -1;
  if (!m || address < 0 || Number(m[2]) > 65535)
    throw new Error(`${where}: must be "IPv4:port" such as 192.0.2.1:51820 (got "${text}")`);
  return [address | 0, Number(m[2])];
}

function parseMacField(text: string, where: string): Uint8Array {
  const out = new Uint8Array(6);
  if (!parseMac(text, out))
    throw new Error(`${where}: not a MAC address such as 02:00:00:00:00:01 (got "${text}")`);
  return out;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

export default defineNf<WireguardConfig>({
  name: 'wireguard',
  summary:
    'A WireGuard VPN gateway: Noise IK handshakes, encrypted transport, cryptokey routing by allowed IPs.',
  outputs: ['outside', 'inside'],
  originates: true,
  drops: {
    malformed: 'the packet parser refused the frame (truncated, bad length or IPv4 header checksum)',
    not_ip: 'neither IPv4 nor IPv6 (ARP and other EtherTypes: the gateway does not answer them)',
    not_for_us: 'addressed to a MAC that is not the gateway side it arrived for',
    truncated: 'a WireGuard message shorter than its type needs, or a handshake message of the wrong size',
    unknown_type: 'a message type other than 1–4, or non-zero reserved bytes',
    bad_mac1:
      'a handshake message whose mac1 does not verify (not meant for this key): no public-key work, no answer',
    handshake_failed: 'a handshake message that did not authenticate (unknown peer, wrong key, tampered)',
    old_timestamp:
      'an initiation whose timestamp is not newer than the greatest accepted from its peer (a replay)',
    handshake_flood:
      'an initiation from a peer less than 20 ms after its last accepted one (≤ 50/s per peer)',
    unknown_receiver:
      'a response, cookie reply or data message whose receiver index names no session of ours',
    key_expired: 'a data message for a session older than REJECT_AFTER_TIME (180 s)',
    decrypt_failed: 'a data message whose authentication tag does not verify (a flipped byte, a forgery)',
    replayed: 'a data message whose counter was seen before, fell out of the window, or is at the limit',
    bad_cookie: 'a cookie reply that does not open with the mac1 we last sent',
    bad_inner_packet: 'a decrypted packet that is not a whole IPv4 or IPv6 packet',
    source_not_allowed: "a decrypted packet whose source is not in the sending peer's allowed IPs",
    keepalive: 'a keepalive (empty data message): authenticated, counted, nothing to forward',
    cookie_absorbed: 'a valid cookie reply: remembered for the next initiation, nothing to forward',
    no_route: 'an inside packet whose destination is in no peer’s allowed IPs',
    no_endpoint: 'an inside packet for a peer whose endpoint is not known yet (it has to handshake first)',
    bad_peer_key: 'an inside packet for a peer whose public key is of low order: it never gets a packet',
    too_big:
      'an inside packet that would not fit its slot once encrypted and may not be answered with ICMP too-big (IPv4 without DF, an ICMP error)',
    staged: 'an inside packet copied to its peer’s staging area while a handshake is under way',
    staging_full: 'an inside packet that found its peer’s staging area full while a handshake is under way',
    fragment:
      'an outer IPv4 fragment to the gateway’s address, held for reassembly: the message goes on with its last fragment (a peer’s tunnel MTU exceeds its path’s)',
    fragment_refused:
      'an outer fragment refused: inconsistent (RFC 791 offsets and lengths), its message larger than a slot, or more messages in reassembly than the table holds',
  },
  counters: {
    initiations_sent: { unit: 'messages', description: 'handshake initiations sent' },
    initiations_received: { unit: 'messages', description: 'handshake initiations accepted' },
    responses_sent: { unit: 'messages', description: 'handshake responses sent' },
    responses_received: { unit: 'messages', description: 'handshake responses accepted' },
    cookie_replies_sent: {
      unit: 'messages',
      description: 'cookie replies sent to handshake messages under load',
    },
    cookie_replies_received: { unit: 'messages', description: 'cookie replies accepted' },
    handshakes_completed: { unit: 'handshakes', description: 'sessions established (either side)' },
    rekeys: {
      unit: 'handshakes',
      description:
        'initiations sent because a session reached REKEY_AFTER_TIME or _MESSAGES, or data arrived on one of ours 165 s old',
    },
    packets_encrypted: { unit: 'packets', description: 'inside packets sent into the tunnel' },
    packets_decrypted: { unit: 'packets', description: 'packets from the tunnel delivered to the inside' },
    keepalives_sent: {
      unit: 'messages',
      description: 'keepalives sent (confirming a handshake we initiated, owed, or persistent)',
    },
    handshake_retries: {
      unit: 'messages',
      description: 'initiations sent again because no response came within REKEY_TIMEOUT',
    },
    timer_handshakes: {
      unit: 'handshakes',
      description:
        'handshakes started by a timer: data sent and nothing heard for 15 s, or a persistent keepalive with no session',
    },
    emits_refused: {
      unit: 'messages',
      description: 'timer messages the host had no room for this tick (tried again at the next)',
    },
    keepalives_received: { unit: 'messages', description: 'keepalives received' },
    tx_bytes: {
      unit: 'bytes',
      description: 'WireGuard message bytes (UDP payload) sent to peers, as `wg show transfer` counts',
    },
    rx_bytes: { unit: 'bytes', description: 'WireGuard message bytes received from peers and authenticated' },
    staged_sent: { unit: 'packets', description: 'staged packets sent when their handshake completed' },
    staged_discarded: {
      unit: 'packets',
      description: 'staged packets given up: not first when the handshake completed, or the handshake failed',
    },
    staging_overflow: {
      unit: 'packets',
      description: 'inside packets not staged because the staging area was full',
    },
    endpoint_changes: {
      unit: 'events',
      description: 'a peer’s endpoint moved to the source of an authenticated packet (roaming)',
    },
    handshakes_under_load: { unit: 'messages', description: 'handshake messages received while under load' },
    fragments_reassembled: {
      unit: 'messages',
      description: 'messages that arrived as outer IPv4 fragments and were reassembled',
    },
    fragments_expired: {
      unit: 'messages',
      description: `messages in reassembly given up: not complete within ${OUTER_FRAGMENT_TIMEOUT_S} s, or evicted for a newer one`,
    },
    too_big_answered: {
      unit: 'packets',
      description:
        'inside packets too big for a slot once encrypted, answered with ICMP fragmentation needed (IPv4 with DF) or ICMPv6 packet too big, giving the largest inner packet the tunnel takes',
    },
  },
  config: {
    privateKey: {
      type: 'string',
      description:
        'the gateway’s private key, base64 as `wg genkey` prints it; never logged, shown or snapshotted',
    },
    listenAddress: { type: 'string', description: 'the IPv4 address peers send WireGuard messages to' },
    listenPort: {
      type: 'integer',
      default: 51820,
      minimum: 1,
      maximum: 65535,
      description: 'the UDP port peers send to',
    },
    outside: {
      type: 'object',
      description: 'the side towards the peers',
      properties: {
        mac: { type: 'string', description: 'the gateway’s MAC on this side (frames to it are taken)' },
        nextHopMac: {
          type: 'string',
          description: 'the MAC every tunnel packet is sent to (the router towards the peers)',
        },
      },
    },
    inside: {
      type: 'object',
      description: 'the side the tunnels lead to',
      properties: {
        mac: { type: 'string', description: 'the gateway’s MAC on this side' },
        nextHopMac: { type: 'string', description: 'the MAC every decrypted packet is sent to' },
      },
    },
    peers: {
      type: 'array',
      description: 'the peers, each a public key with the addresses it may send from and receive for',
      maxItems: 4096,
      items: {
        type: 'object',
        description: 'one peer',
        properties: {
          publicKey: { type: 'string', description: 'the peer’s public key, base64' },
          presharedKey: {
            type: 'string',
            default: '',
            description: 'an optional preshared key, base64 (`wg genpsk`)',
          },
          endpoint: {
            type: 'string',
            default: '',
            description:
              '"IPv4:port" to send to before the peer is heard from; later the last authenticated source',
          },
          allowedIPs: {
            type: 'array',
            default: [],
            items: { type: 'string', description: 'an IPv4 or IPv6 CIDR' },
            description: 'prefixes routed to this peer and accepted from it (longest prefix wins)',
          },
          persistentKeepalive: {
            type: 'integer',
            default: 0,
            minimum: 0,
            maximum: 65535,
            description:
              'seconds between keepalives when nothing else is sent or received (0: off), as `wg set … persistent-keepalive`',
          },
        },
      },
    },
    stagedPackets: {
      type: 'integer',
      default: 16,
      minimum: 1,
      maximum: 1024,
      description: 'inside packets kept per peer while its handshake is under way',
    },
    handshakesUnderLoad: {
      type: 'integer',
      default: 1000,
      minimum: 0,
      description: 'handshake messages per second above which mac2 (a cookie) is required',
    },
  },
  create(config, ctx): WireguardInstance {
    const privateRaw = decodeKey(config.privateKey);
    if (privateRaw === null)
      throw new Error('privateKey: must be a base64-encoded 32-byte key (as `wg genkey` prints)');
    const local: LocalIdentity = localIdentity(privateRaw);
    privateRaw.fill(0);
    const listenU = parseIpv4(config.listenAddress);
    if (listenU < 0) throw new Error(`listenAddress: not an IPv4 address (got "${config.listenAddress}")`);
    const listen = listenU | 0;
    const listenPort = config.listenPort;
    const outsideMac = parseMacField(config.outside.mac, 'outside.mac');
    const outsideNextHop = parseMacField(config.outside.nextHopMac, 'outside.nextHopMac');
    const insideMac = parseMacField(config.inside.mac, 'inside.mac');
    const insideNextHop = parseMacField(config.inside.nextHopMac, 'inside.nextHopMac');

    const peers: Peer[] = [];
    const byKey = new Map<string, Peer>();
    config.peers.forEach((p, n) => {
      const where = `peers[${n}]`;
      const pub = decodeKey(p.publicKey);
      if (pub === null)
        throw new Error(`${where}.publicKey: must be a base64-encoded 32-byte key (got "${p.publicKey}")`);
      if (byKey.has(p.publicKey)) throw new Error(`${where}.publicKey: the same key is given twice`);
      let psk: Uint8Array | undefined;
      if (p.presharedKey !== '') {
        const raw = decodeKey(p.presharedKey);
        if (raw === null) throw new Error(`${where}.presharedKey: must be a base64-encoded 32-byte key`);
        psk = raw;
      }
      const remote = remoteIdentity(local, pub, psk);
      const peer = new Peer(n, encodeKey(pub), remote, new CookieJar(remote.cookieKey), config.stagedPackets);
      if (p.endpoint !== '') {
        [peer.endpointAddr, peer.endpointPort] = parseEndpoint(p.endpoint, `${where}.endpoint`);
        peer.endpointKnown = true;
      }
      peer.persistentKeepalive = p.persistentKeepalive;
      peer.configuredEndpoint = p.endpoint;
      if (remote.staticShared === null)
        ctx.log(
          `${where}: public key ${peer.publicKeyText} is of low order; this peer will never get a packet`,
        );
      peers.push(peer);
      byKey.set(p.publicKey, peer);
    });
    const allowed = AllowedIps.compile(config.peers.map((p) => p.allowedIPs));
    const lookupPeer = (pub: Uint8Array): RemoteIdentity | undefined => byKey.get(encodeKey(pub))?.remote;

    /** Our session and handshake indices → the peer (and session) they belong to. */
    const indices = new Map<number, { peer: Peer; keypair: Keypair | null }>();
    const indexScratch = new Uint32Array(1);
    const newIndex = (): number => {
      for (;;) {
        randomFillSync(indexScratch);
        if (!indices.has(indexScratch[0])) return indexScratch[0];
      }
    };
    const forget = (keypair: Keypair | null): void => {
      if (keypair !== null) indices.delete(keypair.localIndex);
    };

    const cookies = new CookieChecker(local.cookieKey);
    const cipher = new TransportCipher();
    const parser = new PacketParser({ maxTunnelDepth: 0, verifyChecksums: false });
    const rejecter = new Rejecter();
    const source = new Uint8Array(6);
    const mac1Copy = new Uint8Array(MAC_LENGTH);
    const handshakesUnderLoad = config.handshakesUnderLoad;
    let loadWindowStart = -Infinity;
    let loadCount = 0;

    const c = ctx.counters;
    const C = {
      initiationsSent: ctx.counter('initiations_sent'),
      initiationsReceived: ctx.counter('initiations_received'),
      responsesSent: ctx.counter('responses_sent'),
      responsesReceived: ctx.counter('responses_received'),
      cookiesSent: ctx.counter('cookie_replies_sent'),
      cookiesReceived: ctx.counter('cookie_replies_received'),
      completed: ctx.counter('handshakes_completed'),
      rekeys: ctx.counter('rekeys'),
      encrypted: ctx.counter('packets_encrypted'),
      decrypted: ctx.counter('packets_decrypted'),
      keepalivesSent: ctx.counter('keepalives_sent'),
      keepalivesReceived: ctx.counter('keepalives_received'),
      txBytes: ctx.counter('tx_bytes'),
      rxBytes: ctx.counter('rx_bytes'),
      stagedSent: ctx.counter('staged_sent'),
      stagedDiscarded: ctx.counter('staged_discarded'),
      stagingOverflow: ctx.counter('staging_overflow'),
      tooBigAnswered: ctx.counter('too_big_answered'),
      endpointChanges: ctx.counter('endpoint_changes'),
      underLoad: ctx.counter('handshakes_under_load'),
      retries: ctx.counter('handshake_retries'),
      timerHandshakes: ctx.counter('timer_handshakes'),
      emitsRefused: ctx.counter('emits_refused'),
      reassembled: ctx.counter('fragments_reassembled'),
      fragmentsExpired: ctx.counter('fragments_expired'),
    };
    const D = {
      malformed: ctx.dropReason('malformed'),
      notIp: ctx.dropReason('not_ip'),
      notForUs: ctx.dropReason('not_for_us'),
      truncated: ctx.dropReason('truncated'),
      unknownType: ctx.dropReason('unknown_type'),
      badMac1: ctx.dropReason('bad_mac1'),
      handshakeFailed: ctx.dropReason('handshake_failed'),
      oldTimestamp: ctx.dropReason('old_timestamp'),
      flood: ctx.dropReason('handshake_flood'),
      unknownReceiver: ctx.dropReason('unknown_receiver'),
      keyExpired: ctx.dropReason('key_expired'),
      decryptFailed: ctx.dropReason('decrypt_failed'),
      replayed: ctx.dropReason('replayed'),
      badCookie: ctx.dropReason('bad_cookie'),
      badInner: ctx.dropReason('bad_inner_packet'),
      sourceNotAllowed: ctx.dropReason('source_not_allowed'),
      keepalive: ctx.dropReason('keepalive'),
      cookieAbsorbed: ctx.dropReason('cookie_absorbed'),
      noRoute: ctx.dropReason('no_route'),
      noEndpoint: ctx.dropReason('no_endpoint'),
      badPeerKey: ctx.dropReason('bad_peer_key'),
      tooBig: ctx.dropReason('too_big'),
      staged: ctx.dropReason('staged'),
      stagingFull: ctx.dropReason('staging_full'),
      fragment: ctx.dropReason('fragment'),
      fragmentRefused: ctx.dropReason('fragment_refused'),
    };
    // Outer fragments: a peer whose tunnel MTU exceeds its path's MTU has its kernel fragment the
    // UDP datagrams (Linux sends WireGuard's datagrams without DF); the receiving kernel would
    // reassemble them before the socket, so the gateway does here.
    const outerFragments = new FragmentTable({
      maxDatagrams: OUTER_FRAGMENT_DATAGRAMS,
      bytes: OUTER_FRAGMENT_BYTES,
      datagramBytes: OUTER_FRAGMENT_DATAGRAM_BYTES,
      rejectConflicts: true,
    });
    const fragmentKey = new FlowKey();

    /**
     * Takes outer fragment i (parsed) into reassembly. True when it completed its datagram, which
     * then replaces the fragment in its slot, parsed; otherwise the fragment is dropped (held, or
     * refused).
     */
    function reassembleOuter(batch: PacketBatchLike, i: number, now: number): boolean {
      const b = batch.bytes;
      const at = batch.at[i];
      const ip = parser.ipv4;
      const dataAt = ip.payloadAt();
      fragmentKey.setV4(ip.src(), ip.dst(), IpProtocol.Udp, 0, ip.identification());
      const result = outerFragments.add(
        fragmentKey,
        now,
        ip.fragmentOffset(),
        ip.moreFragments(),
        b,
        dataAt,
        ip.payloadLength(),
        at,
        dataAt - at,
        ip.at - at,
        -1,
        0,
      );
      if (result !== FragmentResult.Complete) {
        batch.drop(i, result === FragmentResult.Held ? D.fragment : D.fragmentRefused);
        return false;
      }
      const out = outerFragments.out;
      const length = outerFragments.outLength;
      if (!outerFragments.seal() || !batch.setLength(i, length)) {
        batch.drop(i, D.fragmentRefused);
        return false;
      }
      for (let k = 0; k < length; k++) b[at + k] = out[k];
      c[C.reassembled]++;
      const reason = parser.attach(b, at, length);
      if (reason !== DropReason.None || parser.fragment) {
        ctx.malformed(parser.failedLayer, reason);
        batch.drop(i, D.malformed);
        return false;
      }
      return true;
    }
    const OUT = ctx.output('outside');
    const IN = ctx.output('inside');

    /** Writes Ethernet, IPv4 and UDP headers at `b[at…]` for a message of `length` bytes to (addr, port). */
    function writeOuter(b: Uint8Array, at: number, length: number, addr: number, port: number): number {
      b.set(outsideNextHop, at);
      b.set(outsideMac, at + 6);
      write16(b, at + 12, EtherType.Ipv4);
      const ip = at + OUTER_IP;
      b[ip] = 0x45;
      b[ip + 1] = 0;
      write16(b, ip + 2, 28 + length);
      write32(b, ip + 4, 0); // identification 0, no flags: the message may be fragmented on its way
      b[ip + 8] = TTL;
      b[ip + 9] = IpProtocol.Udp;
      write16(b, ip + 10, 0);
      write32(b, ip + 12, listen);
      write32(b, ip + 16, addr);
      write16(b, ip + 10, internetChecksum(b, ip, 20));
      const u = at + OUTER_UDP;
      write16(b, u, listenPort);
      write16(b, u + 2, port);
      write16(b, u + 4, 8 + length);
      write16(b, u + 6, 0);
      const sum = internetChecksum(
        b,
        u,
        8 + length,
        pseudoHeaderSumV4(listen, addr, IpProtocol.Udp, 8 + length),
      );
      write16(b, u + 6, sum === 0 ? 0xffff : sum);
      return MESSAGE + length;
    }

    /** The endpoint follows the source of the last authenticated packet (roaming, whitepaper §2.1). */
    function roam(peer: Peer, addr: number, port: number): void {
      if (peer.endpointKnown && peer.endpointAddr === addr && peer.endpointPort === port) return;
      if (peer.endpointKnown) c[C.endpointChanges]++;
      peer.endpointKnown = true;
      peer.endpointAddr = addr;
      peer.endpointPort = port;
    }

    function underLoad(now: number): boolean {
      if (now - loadWindowStart >= 1e9) {
        loadWindowStart = now;
        loadCount = 0;
      }
      loadCount++;
      return loadCount > handshakesUnderLoad;
    }

    function newKeypair(
      peer: Peer,
      localIndex: number,
      remoteIndex: number,
      send: Uint8Array,
      receive: Uint8Array,
      initiator: boolean,
      now: number,
    ): Keypair {
      const keypair: Keypair = {
        peer: peer.index,
        localIndex,
        remoteIndex,
        send: transportKey(send),
        receive: transportKey(receive),
        sendHi: 0,
        sendLo: 0,
        window: new ReplayWindow(),
        createdAt: now,
        initiator,
      };
      send.fill(0);
      receive.fill(0);
      indices.set(localIndex, { peer, keypair });
      peer.lastHandshake = now;
      c[C.completed]++;
      return keypair;
    }

    /** A session this side may send on now. */
    function sendable(keypair: Keypair | null, now: number): keypair is Keypair {
      return (
        keypair !== null &&
        now - keypair.createdAt < REJECT_AFTER_TIME &&
        (keypair.sendHi < REJECT_AFTER_MESSAGES_HI || keypair.sendLo < REJECT_AFTER_MESSAGES_LO)
      );
    }

    /**
     * Encrypts `src[srcAt, srcAt+length)` (an IP packet, or nothing for a keepalive) into packet
     * `i` as a data message to `peer`. Returns false, changing nothing, when it would not fit.
     */
    function sendData(
      batch: PacketBatchLike,
      i: number,
      peer: Peer,
      keypair: Keypair,
      src: Uint8Array,
      srcAt: number,
      length: number,
      now: number,
    ): boolean {
      const b = batch.bytes;
      const at = batch.at[i];
      const messageLength = Data.Payload + paddedLength(length) + 16;
      if (!batch.setLength(i, MESSAGE + messageLength)) return false;
      const hi = keypair.sendHi;
      const lo = keypair.sendLo;
      // Every source byte is read by seal() before the headers below overwrite the frame's start.
      cipher.seal(keypair.send, hi, lo, src, srcAt, length, b, at + MESSAGE + Data.Payload);
      keypair.sendLo = (lo + 1) >>> 0;
      if (keypair.sendLo === 0) keypair.sendHi++;
      const m = at + MESSAGE;
      writeType(b, m, MessageType.Data);
      writeLe32(b, m + Data.Receiver, keypair.remoteIndex);
      writeLe32(b, m + Data.Counter, lo);
      writeLe32(b, m + Data.Counter + 4, hi);
      writeOuter(b, at, messageLength, peer.endpointAddr, peer.endpointPort);
      peer.txBytes += messageLength;
      c[C.txBytes] += messageLength;
      sent(peer, length > 0, now);
      return true;
    }

    /** Timer bookkeeping for every authenticated message sent to `peer` (data when `isData`). */
    function sent(peer: Peer, isData: boolean, now: number): void {
      peer.lastTraversal = now;
      peer.lastSent = now;
      peer.unansweredSince = -1;
      if (isData && peer.awaitingReplySince < 0) peer.awaitingReplySince = now;
    }

    /** …and for every authenticated message received from it (data when `isData`). */
    function received(peer: Peer, isData: boolean, now: number): void {
      peer.lastTraversal = now;
      peer.awaitingReplySince = -1;
      if (isData && peer.unansweredSince < 0) peer.unansweredSince = now;
    }

    /** Rewrites packet `i` into an initiation to `peer`; false for a low-order peer key. */
    function sendInitiation(b: Uint8Array, at: number, peer: Peer, now: number): boolean {
      const index = newIndex();
      const state = writeInitiation(local, peer.remote, index, now, b, at + MESSAGE);
      if (state === null) return false;
      writeMac1(b, at + MESSAGE, Initiation.Mac1, peer.remote.mac1Key);
      peer.jar.sent(b, at + MESSAGE, Initiation.Mac1);
      peer.jar.writeMac2(b, at + MESSAGE, Initiation.Mac2, now);
      if (peer.handshake !== null) indices.delete(peer.handshake.senderIndex);
      peer.handshake = state;
      peer.handshakeSentAt = now;
      if (peer.handshakeStartedAt < 0) peer.handshakeStartedAt = now;
      indices.set(index, { peer, keypair: null });
      writeOuter(b, at, Initiation.Length, peer.endpointAddr, peer.endpointPort);
      peer.txBytes += Initiation.Length;
      c[C.txBytes] += Initiation.Length;
      c[C.initiationsSent]++;
      sent(peer, false, now);
      return true;
    }

    function stage(peer: Peer, b: Uint8Array, from: number, length: number, capacity: number): boolean {
      const slots = peer.stagedLength.length;
      if (peer.staged === null) {
        peer.stageSlot = capacity;
        peer.staged = new Uint8Array(slots * capacity);
      }
      if (peer.stagedCount === slots || length > peer.stageSlot) {
        c[C.stagingOverflow]++;
        return false;
      }
      const slot = (peer.stagedHead + peer.stagedCount) % slots;
      peer.staged.set(b.subarray(from, from + length), slot * peer.stageSlot);
      peer.stagedLength[slot] = length;
      peer.stagedCount++;
      return true;
    }

    function discardStaged(peer: Peer): void {
      c[C.stagedDiscarded] += peer.stagedCount;
      peer.stagedCount = 0;
      peer.stagedHead = 0;
    }

    /**
     * An inside packet that would not fit its slot once encrypted: answered, like a router whose next
     * hop is too narrow, with the largest inner packet the tunnel takes (so path-MTU discovery finds
     * it), or dropped as `too_big` when no answer may be sent (IPv4 without DF, an ICMP error…).
     */
    function tooBig(batch: PacketBatchLike, i: number, at: number): void {
      const mtu = Math.floor((batch.capacity - MESSAGE - Data.Payload - 16) / 16) * 16;
      const length = rejecter.buildTooBig(parser, at, batch.capacity, mtu);
      if (length < 0 || !batch.setLength(i, length)) return batch.drop(i, D.tooBig);
      c[C.tooBigAnswered]++;
      batch.send(i, IN);
    }

    function inside(batch: PacketBatchLike, i: number, now: number): void {
      const b = batch.bytes;
      const at = batch.at[i];
      const l3 = parser.eth.payloadAt();
      let length: number;
      let owner: number;
      if (parser.l3 === Layer.Ipv4) {
        length = parser.ipv4.totalLength();
        owner = allowed.lookupV4(parser.ipv4.dst());
      } else {
        length = 40 + read16(b, l3 + 4);
        owner = allowed.lookupV6(b, l3 + 24);
      }
      if (owner < 0) return batch.drop(i, D.noRoute);
      const peer = peers[owner];
      if (peer.remote.staticShared === null) return batch.drop(i, D.badPeerKey);
      if (!peer.endpointKnown) return batch.drop(i, D.noEndpoint);
      if (MESSAGE + Data.Payload + paddedLength(length) + 16 > batch.capacity) return tooBig(batch, i, at);
      const keypair = peer.current;
      const usable = sendable(keypair, now);
      // One initiation per REKEY_TIMEOUT; none while the peer's own fresh session awaits its first
      // data packet (answering its handshake with ours would only race it).
      const canInitiate =
        now - peer.handshakeSentAt >= REKEY_TIMEOUT &&
        (peer.next === null || now - peer.next.createdAt >= REKEY_TIMEOUT);
      const rekey =
        usable &&
        keypair.initiator &&
        (now - keypair.createdAt >= REKEY_AFTER_TIME || keypair.sendHi >= REKEY_AFTER_MESSAGES_HI);
      if (usable && !(rekey && canInitiate)) {
        sendData(batch, i, peer, keypair, b, l3, length, now); // fits: checked above
        c[C.encrypted]++;
        return batch.send(i, OUT);
      }
      // A handshake is needed: keep the packet for when it completes.
      const kept = stage(peer, b, l3, length, batch.capacity);
      if (canInitiate) {
        if (!sendInitiation(b, at, peer, now)) return batch.drop(i, D.badPeerKey);
        if (rekey) c[C.rekeys]++;
        batch.setLength(i, MESSAGE + Initiation.Length);
        return batch.send(i, OUT);
      }
      batch.drop(i, kept ? D.staged : D.stagingFull);
    }

    /**
     * The gate of every handshake message (whitepaper §5.3): it counts towards the load, needs a
     * valid mac1, and under load a valid mac2 too — without one it is answered with a cookie reply
     * in its place. Returns true when the message may be processed; otherwise its verdict is set.
     */
    function admitHandshake(
      batch: PacketBatchLike,
      i: number,
      m: number,
      mac1At: number,
      mac2At: number,
      senderAt: number,
      srcAddr: number,
      srcPort: number,
      now: number,
    ): boolean {
      const b = batch.bytes;
      const at = batch.at[i];
      const loaded = underLoad(now);
      if (!checkMac1(b, m, mac1At, local.mac1Key)) {
        batch.drop(i, D.badMac1);
        return false;
      }
      if (!loaded) return true;
      c[C.underLoad]++;
      if (cookies.checkMac2(b, m, mac2At, source, now)) return true;
      const sender = readLe32(b, m + senderAt);
      mac1Copy.set(b.subarray(m + mac1At, m + mac2At));
      cookies.writeReply(b, at + MESSAGE, sender, mac1Copy, source, now);
      writeOuter(b, at, CookieReply.Length, srcAddr, srcPort);
      batch.setLength(i, MESSAGE + CookieReply.Length);
      c[C.cookiesSent]++;
      batch.send(i, OUT);
      return false;
    }

    function initiation(
      batch: PacketBatchLike,
      i: number,
      m: number,
      srcAddr: number,
      srcPort: number,
      now: number,
    ): void {
      if (
        !admitHandshake(
          batch,
          i,
          m,
          Initiation.Mac1,
          Initiation.Mac2,
          Initiation.Sender,
          srcAddr,
          srcPort,
          now,
        )
      )
        return;
      const b = batch.bytes;
      const at = batch.at[i];
      const seen = readInitiation(local, b, m, lookupPeer);
      if (seen === null) return batch.drop(i, D.handshakeFailed);
      const peer = byKey.get(encodeKey(seen.peer.publicKey));
      if (peer === undefined) return batch.drop(i, D.handshakeFailed);
      if (peer.hasTimestamp && compareTimestamps(seen.timestamp, peer.greatestTimestamp) <= 0)
        return batch.drop(i, D.oldTimestamp);
      if (now - peer.lastInitiationAt < INITIATION_MIN_INTERVAL) return batch.drop(i, D.flood);
      peer.greatestTimestamp.set(seen.timestamp);
      peer.hasTimestamp = true;
      peer.lastInitiationAt = now;
      peer.rxBytes += Initiation.Length;
      c[C.rxBytes] += Initiation.Length;
      c[C.initiationsReceived]++;
      received(peer, false, now);
      roam(peer, srcAddr, srcPort);
      const index = newIndex();
      const keys = writeResponse(seen, index, b, at + MESSAGE);
      if (keys === null) return batch.drop(i, D.handshakeFailed);
      writeMac1(b, at + MESSAGE, Response.Mac1, peer.remote.mac1Key);
      peer.jar.sent(b, at + MESSAGE, Response.Mac1);
      peer.jar.writeMac2(b, at + MESSAGE, Response.Mac2, now);
      forget(peer.next);
      peer.next = newKeypair(peer, index, seen.peerIndex, keys.send, keys.receive, false, now);
      writeOuter(b, at, Response.Length, peer.endpointAddr, peer.endpointPort);
      batch.setLength(i, MESSAGE + Response.Length);
      peer.txBytes += Response.Length;
      c[C.txBytes] += Response.Length;
      c[C.responsesSent]++;
      sent(peer, false, now);
      batch.send(i, OUT);
    }

    function response(
      batch: PacketBatchLike,
      i: number,
      m: number,
      srcAddr: number,
      srcPort: number,
      now: number,
    ): void {
      if (!admitHandshake(batch, i, m, Response.Mac1, Response.Mac2, Response.Sender, srcAddr, srcPort, now))
        return;
      const b = batch.bytes;
      const entry = indices.get(readLe32(b, m + Response.Receiver));
      const peer = entry?.peer;
      if (entry === undefined || peer === undefined || entry.keypair !== null || peer.handshake === null)
        return batch.drop(i, D.unknownReceiver);
      const handshake = peer.handshake;
      const keys = readResponse(local, peer.remote, handshake, b, m);
      if (keys === null) return batch.drop(i, D.handshakeFailed);
      const remoteIndex = readLe32(b, m + Response.Sender);
      peer.handshake = null;
      peer.handshakeStartedAt = -1;
      peer.handshakeSentAt = -Infinity;
      peer.rxBytes += Response.Length;
      c[C.rxBytes] += Response.Length;
      c[C.responsesReceived]++;
      received(peer, false, now);
      roam(peer, srcAddr, srcPort);
      forget(peer.previous);
      peer.previous = peer.current;
      peer.current = newKeypair(peer, handshake.senderIndex, remoteIndex, keys.send, keys.receive, true, now);
      // Confirm the session at once (the responder may not send before it hears from us): in the
      // first staged packet, or in a keepalive.
      if (peer.stagedCount > 0 && peer.staged !== null) {
        const slot = peer.stagedHead;
        const ok = sendData(
          batch,
          i,
          peer,
          peer.current,
          peer.staged,
          slot * peer.stageSlot,
          peer.stagedLength[slot],
          now,
        );
        peer.stagedHead = (peer.stagedHead + 1) % peer.stagedLength.length;
        peer.stagedCount--;
        if (ok) {
          c[C.stagedSent]++;
          c[C.encrypted]++;
        } else c[C.stagedDiscarded]++;
        discardStaged(peer);
        if (ok) return batch.send(i, OUT);
      }
      sendData(batch, i, peer, peer.current, b, 0, 0, now);
      c[C.keepalivesSent]++;
      batch.send(i, OUT);
    }

    function cookieReply(batch: PacketBatchLike, i: number, m: number, now: number): void {
      const b = batch.bytes;
      const entry = indices.get(readLe32(b, m + CookieReply.Receiver));
      if (entry === undefined) return batch.drop(i, D.unknownReceiver);
      if (!entry.peer.jar.consumeReply(b, m, now)) return batch.drop(i, D.badCookie);
      c[C.cookiesReceived]++;
      batch.drop(i, D.cookieAbsorbed);
    }

    function data(
      batch: PacketBatchLike,
      i: number,
      m: number,
      n: number,
      srcAddr: number,
      srcPort: number,
      now: number,
    ): void {
      const b = batch.bytes;
      const at = batch.at[i];
      const entry = indices.get(readLe32(b, m + Data.Receiver));
      const keypair = entry?.keypair;
      if (entry === undefined || keypair === null || keypair === undefined)
        return batch.drop(i, D.unknownReceiver);
      if (now - keypair.createdAt >= REJECT_AFTER_TIME) return batch.drop(i, D.keyExpired);
      const lo = readLe32(b, m + Data.Counter);
      const hi = readLe32(b, m + Data.Counter + 4);
      const plain = cipher.open(keypair.receive, hi, lo, b, m + Data.Payload, n - Data.Payload, b, at + ETH);
      if (plain < 0) return batch.drop(i, D.decryptFailed);
      if (!keypair.window.accept(hi, lo, REJECT_AFTER_MESSAGES_HI, REJECT_AFTER_MESSAGES_LO))
        return batch.drop(i, D.replayed);
      const peer = entry.peer;
      peer.rxBytes += n;
      c[C.rxBytes] += n;
      received(peer, plain > 0, now);
      if (keypair.initiator && keypair === peer.current && now - keypair.createdAt >= KEYS_GETTING_OLD)
        peer.keysGettingOld = true;
      roam(peer, srcAddr, srcPort);
      if (keypair === peer.next) {
        // The initiator used the session: it is confirmed; the one before stays for late packets.
        forget(peer.previous);
        peer.previous = peer.current;
        peer.current = keypair;
        peer.next = null;
        // Packets staged while the peer's handshake was pending have no packet to leave in now.
        discardStaged(peer);
      }
      if (plain === 0) {
        c[C.keepalivesReceived]++;
        return batch.drop(i, D.keepalive);
      }
      const p = at + ETH;
      const version = b[p] >>> 4;
      let length: number;
      let owner: number;
      let etherType: number;
      if (version === 4 && plain >= 20) {
        length = read16(b, p + 2);
        if (length < 20 || length > plain) return batch.drop(i, D.badInner);
        owner = allowed.lookupV4(read32(b, p + 12));
        etherType = EtherType.Ipv4;
      } else if (version === 6 && plain >= 40) {
        length = 40 + read16(b, p + 4);
        if (length > plain) return batch.drop(i, D.badInner);
        owner = allowed.lookupV6(b, p + 8);
        etherType = EtherType.Ipv6;
      } else return batch.drop(i, D.badInner);
      if (owner !== peer.index) return batch.drop(i, D.sourceNotAllowed);
      b.set(insideNextHop, at);
      b.set(insideMac, at + 6);
      write16(b, at + 12, etherType);
      batch.setLength(i, ETH + length);
      c[C.decrypted]++;
      batch.send(i, IN);
    }

    function outside(batch: PacketBatchLike, i: number, now: number): void {
      const b = batch.bytes;
      const m = parser.payloadAt;
      const n = parser.payloadLength;
      const srcAddr = parser.ipv4.src() | 0;
      const srcPort = parser.udp.srcPort();
      write32(source, 0, srcAddr);
      write16(source, 4, srcPort);
      if (n < 4) return batch.drop(i, D.truncated);
      const type = b[m];
      if (b[m + 1] !== 0 || b[m + 2] !== 0 || b[m + 3] !== 0) return batch.drop(i, D.unknownType);
      switch (type) {
        case MessageType.Initiation:
          if (n !== Initiation.Length) return batch.drop(i, D.truncated);
          return initiation(batch, i, m, srcAddr, srcPort, now);
        case MessageType.Response:
          if (n !== Response.Length) return batch.drop(i, D.truncated);
          return response(batch, i, m, srcAddr, srcPort, now);
        case MessageType.CookieReply:
          if (n !== CookieReply.Length) return batch.drop(i, D.truncated);
          return cookieReply(batch, i, m, now);
        case MessageType.Data:
          if (n < Data.MinLength) return batch.drop(i, D.truncated);
          return data(batch, i, m, n, srcAddr, srcPort, now);
        default:
          return batch.drop(i, D.unknownType);
      }
    }

    // ── what the timers send (made here, emitted with ctx.emit) ─────────────────────────────────

    /** A one-packet batch for the messages the NF makes: an initiation is the largest. */
    const OWN_ROOM = MESSAGE + Initiation.Length;
    const own: PacketBatchLike = {
      bytes: new Uint8Array(OWN_ROOM),
      capacity: OWN_ROOM,
      at: new Uint32Array(1),
      length: new Uint32Array(1),
      send: () => undefined,
      drop: () => undefined,
      setLength: (_i, length) => {
        if (length > OWN_ROOM) return false;
        own.length[0] = length;
        return true;
      },
    };

    /** Set when the host refused an emit: the remaining peers wait for the next tick (no wasted DH). */
    let hostFull = false;

    /** Emits what `own` holds; when the host has no room, undoes the send's accounting and timers. */
    function emitOwn(peer: Peer, messageLength: number, timers: readonly number[]): boolean {
      if (ctx.emit(own.bytes, 0, MESSAGE + messageLength, OUT)) return true;
      hostFull = true;
      peer.txBytes -= messageLength;
      c[C.txBytes] -= messageLength;
      [peer.lastTraversal, peer.lastSent, peer.unansweredSince, peer.awaitingReplySince] = timers;
      c[C.emitsRefused]++;
      return false;
    }

    function timerState(peer: Peer): number[] {
      return [peer.lastTraversal, peer.lastSent, peer.unansweredSince, peer.awaitingReplySince];
    }

    function emitKeepalive(peer: Peer, keypair: Keypair, now: number): boolean {
      const timers = timerState(peer);
      sendData(own, 0, peer, keypair, own.bytes, 0, 0, now); // 32 bytes: always fits
      if (!emitOwn(peer, Data.Payload + 16, timers)) return false;
      c[C.keepalivesSent]++;
      return true;
    }

    function emitInitiation(peer: Peer, now: number): boolean {
      const timers = timerState(peer);
      if (!sendInitiation(own.bytes, 0, peer, now)) return false;
      if (emitOwn(peer, Initiation.Length, timers)) return true;
      // Not sent: the handshake state stands (nothing else can answer it), and the next tick retries.
      c[C.initiationsSent]--;
      peer.handshakeSentAt = -Infinity;
      return false;
    }

    /** What a peer's timers owe it now (see the file comment). */
    function runTimers(peer: Peer, now: number): void {
      if (hostFull || peer.remote.staticShared === null || !peer.endpointKnown) return;
      const mayInitiate =
        now - peer.handshakeSentAt >= REKEY_TIMEOUT &&
        (peer.next === null || now - peer.next.createdAt >= REKEY_TIMEOUT);
      if (peer.handshake !== null) {
        if (mayInitiate && emitInitiation(peer, now)) c[C.retries]++;
        peer.keysGettingOld = false;
      } else if (peer.keysGettingOld && mayInitiate) {
        if (emitInitiation(peer, now)) {
          peer.keysGettingOld = false;
          c[C.rekeys]++;
        }
      } else if (
        peer.awaitingReplySince >= 0 &&
        now - peer.awaitingReplySince >= KEEPALIVE_TIMEOUT + REKEY_TIMEOUT &&
        mayInitiate
      ) {
        if (emitInitiation(peer, now)) {
          peer.awaitingReplySince = -1;
          c[C.timerHandshakes]++;
        }
      }
      const keypair = peer.current;
      const usable = sendable(keypair, now);
      if (usable && peer.unansweredSince >= 0 && now - peer.unansweredSince >= KEEPALIVE_TIMEOUT) {
        emitKeepalive(peer, keypair, now);
        return;
      }
      const interval = peer.persistentKeepalive * 1e9;
      if (interval > 0 && (peer.lastTraversal < 0 || now - peer.lastTraversal >= interval)) {
        if (usable) emitKeepalive(peer, keypair, now);
        else if (peer.handshake === null && mayInitiate && emitInitiation(peer, now)) c[C.timerHandshakes]++;
      }
    }

    function macIs(b: Uint8Array, at: number, mac: Uint8Array): boolean {
      return (
        b[at] === mac[0] &&
        b[at + 1] === mac[1] &&
        b[at + 2] === mac[2] &&
        b[at + 3] === mac[3] &&
        b[at + 4] === mac[4] &&
        b[at + 5] === mac[5]
      );
    }

    function status(peer: Peer): WireguardPeerStatus {
      return {
        publicKey: peer.publicKeyText,
        endpoint: peer.endpointKnown ? `${formatIpv4(peer.endpointAddr >>> 0)}:${peer.endpointPort}` : '',
        rxBytes: peer.rxBytes,
        txBytes: peer.txBytes,
        lastHandshake: peer.lastHandshake,
        greatestTimestamp: peer.hasTimestamp ? hex(peer.greatestTimestamp) : '',
      };
    }

    return {
      plan: {
        publicKey: encodeKey(local.publicKey),
        listen: `${config.listenAddress}:${listenPort}`,
        peers: peers.length,
      },
      process(batch, now) {
        const b = batch.bytes;
        for (let i = 0; i < batch.count; i++) {
          const at = batch.at[i];
          const reason = parser.attach(b, at, batch.length[i]);
          if (reason !== DropReason.None) {
            ctx.malformed(parser.failedLayer, reason);
            batch.drop(i, D.malformed);
            continue;
          }
          if (parser.l3 !== Layer.Ipv4 && parser.l3 !== Layer.Ipv6) {
            batch.drop(i, D.notIp);
            continue;
          }
          if (
            parser.fragment &&
            parser.l3 === Layer.Ipv4 &&
            parser.ipv4.protocol() === IpProtocol.Udp &&
            (parser.ipv4.dst() | 0) === listen &&
            macIs(b, at, outsideMac) &&
            !reassembleOuter(batch, i, now)
          )
            continue; // held for the rest of its message, or refused
          // (A completed message is in the slot now, parsed like any datagram.)
          const wireguard =
            parser.l4 === Layer.Udp &&
            parser.l3 === Layer.Ipv4 &&
            parser.tunnelDepth === 0 &&
            (parser.ipv4.dst() | 0) === listen &&
            parser.udp.dstPort() === listenPort;
          if (!macIs(b, at, wireguard ? outsideMac : insideMac)) {
            batch.drop(i, D.notForUs);
            continue;
          }
          if (wireguard) outside(batch, i, now);
          else inside(batch, i, now);
        }
      },
      tick(now) {
        hostFull = false;
        outerFragments.expire(now, OUTER_FRAGMENT_TIMEOUT_S * 1e9);
        c[C.fragmentsExpired] +=
          outerFragments.stats[FragmentStat.Expired] + outerFragments.stats[FragmentStat.Evicted];
        outerFragments.stats.fill(0);
        for (const peer of peers) {
          if (peer.handshake !== null && now - peer.handshakeStartedAt >= REKEY_ATTEMPT_TIME) {
            // Whitepaper §6.4: after REKEY_ATTEMPT_TIME of trying, give up and drop what waited.
            indices.delete(peer.handshake.senderIndex);
            peer.handshake = null;
            peer.handshakeStartedAt = -1;
            discardStaged(peer);
          }
          runTimers(peer, now);
          // Sessions are useless after REJECT_AFTER_TIME; their keys are forgotten after three times that.
          for (const keypair of [peer.previous, peer.current, peer.next]) {
            if (keypair !== null && now - keypair.createdAt >= 3 * REJECT_AFTER_TIME) {
              forget(keypair);
              if (peer.previous === keypair) peer.previous = null;
              if (peer.current === keypair) peer.current = null;
              if (peer.next === keypair) peer.next = null;
            }
          }
        }
      },
      peers: () => peers.map(status),
      snapshot(): WireguardSnapshot {
        return {
          version: 1,
          peers: peers.map(status),
          configured: Object.fromEntries(peers.map((p) => [p.publicKeyText, p.configuredEndpoint])),
        };
      },
      restore(state) {
        const s = state as Partial<WireguardSnapshot> | null;
        if (s?.version !== 1 || !Array.isArray(s.peers)) return;
        for (const saved of s.peers) {
          const peer = byKey.get(saved.publicKey);
          if (peer === undefined) continue;
          const operatorMovedIt =
            s.configured?.[saved.publicKey] !== undefined &&
            s.configured[saved.publicKey] !== peer.configuredEndpoint;
          if (saved.endpoint !== '' && !operatorMovedIt) {
            try {
              [peer.endpointAddr, peer.endpointPort] = parseEndpoint(saved.endpoint, 'snapshot');
              peer.endpointKnown = true;
            } catch {
              // A snapshot from another configuration: keep the configured endpoint.
            }
          }
          if (/^[0-9a-f]{24}$/.test(saved.greatestTimestamp)) {
            peer.greatestTimestamp.set(Buffer.from(saved.greatestTimestamp, 'hex'));
            peer.hasTimestamp = true;
          }
          peer.rxBytes = saved.rxBytes;
          peer.txBytes = saved.txBytes;
          peer.lastHandshake = saved.lastHandshake;
        }
      },
    };
  },
});

/** The part of PacketBatch the handlers use (kept structural so helpers stay small). */
interface PacketBatchLike {
  bytes: Uint8Array;
  capacity: number;
  readonly at: Uint32Array;
  readonly length: Uint32Array;
  send(i: number, output?: number): void;
  drop(i: number, reason: number): void;
  setLength(i: number, length: number): boolean;
}
