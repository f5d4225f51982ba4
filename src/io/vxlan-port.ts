/**
 * A VXLAN tunnel endpoint (RFC 7348) over UDP, interoperating with the Linux kernel's `vxlan`
 * device: it accepts datagrams whose header has the I flag and this port's VNI, queues their inner
 * Ethernet frames, and sends frames with that VNI to the remote endpoint. See `TunnelPort` for the
 * receive ring, the meaning of `next()`'s 0 and -1, the counters and the outer source port.
 *
 * @example
 * const port = new VxlanPort({ bind: { address: '192.0.2.1' }, remote: { address: '192.0.2.2' }, vni: 42 });
 * await port.open();
 * port.onReadable = () => { let n; while ((n = port.next(buf, 0, buf.length)) > 0) other.write(buf, 0, n, 0, 0); };
 */
import { DropReason } from '../packet/drop-reason.js';
import { UdpPort } from '../packet/ip-protocol.js';
import { VXLAN_HEADER_LENGTH, VxlanRepr, VxlanView } from '../packet/vxlan.js';
import { Decap, TunnelPort, type TunnelPortOptions } from './tunnel-port.js';

export type VxlanPortOptions = TunnelPortOptions;

export class VxlanPort extends TunnelPort {
  private readonly view = new VxlanView();
  private readonly header: Uint8Array;

  /** `bind.port` and `remote.port` default to 4789 (IANA). */
  constructor(options: VxlanPortOptions) {
    super('vxlan', UdpPort.Vxlan, options);
    this.header = new Uint8Array(VXLAN_HEADER_LENGTH);
    VxlanRepr.emit({ vni: this.vni }, this.header, 0, this.view);
  }

  protected maxHeaderLength(): number {
    return VXLAN_HEADER_LENGTH;
  }

  protected decapsulate(payload: Uint8Array, at: number, length: number): number {
    if (this.view.attach(payload, at, length) !== DropReason.None) return Decap.Malformed;
    if (this.view.vni() !== this.vni) return Decap.WrongVni;
    return this.view.payloadAt();
  }

  protected remoteHeader(): Uint8Array {
    return this.header;
  }
}
