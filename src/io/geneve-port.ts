/**
 * A GENEVE endpoint (RFC 8926) over UDP. It accepts version-0 datagrams with this port's VNI whose
 * options are well formed and whose protocol type is 0x6558 (an inner Ethernet frame); OAM packets
 * and other protocol types are counted (`rx_ignored`) and not forwarded. Options are not
 * interpreted: without a `remote`, each frame goes back to the endpoint its flow came from with the
 * exact header — VNI and options — it arrived with (an appliance behind a gateway load balancer);
 * with a `remote`, frames are sent to it with this port's VNI and the configured `options`.
 * A received critical option this endpoint does not understand is not a reason to drop here: the
 * port passes headers through unchanged rather than acting on them (RFC 8926 §3.5.1 binds
 * endpoints that terminate the tunnel; a transit appliance returns it).
 * See `TunnelPort` for the receive ring, `next()`'s 0 and -1, and the counters.
 *
 * @example
 * const port = new GenevePort({ bind: { address: '10.0.0.5' }, vni: 0 }); // replies in the arriving tunnel
 * await port.open();
 */
import { DropReason } from '../packet/drop-reason.js';
import {
  GENEVE_MAX_HEADER_LENGTH,
  GENEVE_OPTION_CRITICAL,
  GeneveRepr,
  GeneveView,
  type GeneveOption,
} from '../packet/geneve.js';
import { EtherType, UdpPort } from '../packet/ip-protocol.js';
import { Decap, TunnelPort, type TunnelPortOptions } from './tunnel-port.js';

export interface GenevePortOptions extends TunnelPortOptions {
  /** Options sent towards `remote` (default none). */
  options?: GeneveOption[];
}

export class GenevePort extends TunnelPort {
  private readonly view = new GeneveView();
  private readonly header: Uint8Array;

  /** `bind.port` and `remote.port` default to 6081 (IANA). */
  constructor(options: GenevePortOptions) {
    super('geneve', UdpPort.Geneve, options);
    const repr: GeneveRepr = {
      vni: this.vni,
      protocolType: EtherType.TransparentEthernet,
      oam: false,
      critical: (options.options ?? []).some((o) => (o.type & GENEVE_OPTION_CRITICAL) !== 0),
      options: options.options ?? [],
    };
    this.header = new Uint8Array(GeneveRepr.headerLength(repr));
    GeneveRepr.emit(repr, this.header, 0, this.view);
  }

  protected maxHeaderLength(): number {
    return GENEVE_MAX_HEADER_LENGTH;
  }

  protected decapsulate(payload: Uint8Array, at: number, length: number): number {
    if (this.view.attach(payload, at, length) !== DropReason.None) return Decap.Malformed;
    if (this.view.vni() !== this.vni) return Decap.WrongVni;
    if (this.view.oam() || this.view.protocolType() !== EtherType.TransparentEthernet) return Decap.Ignored;
    return this.view.payloadAt();
  }

  protected remoteHeader(): Uint8Array {
    return this.header;
  }
}
