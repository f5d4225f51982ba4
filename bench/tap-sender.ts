/**
 * The traffic source of bench/tap.ts, run as its own process (inside a namespace for the TAP
 * measurement): sends one UDP payload as fast as `sendmmsg` batches of 64 go, for a bounded time,
 * and prints the datagrams the kernel accepted as JSON. Uses the native addon; exits 2 without it.
 *
 *   node tap-sender.js <address> <port> <seconds> <payload hex>
 */
import { loadNativeAddon, addonUnavailableReason } from '../src/io/native-addon.js';
import { UdpBatchSocket } from '../src/io/udp-batch.js';

const BATCH = 64;
const MAX_SECONDS = 30;

const [address, portText, secondsText, hex] = process.argv.slice(2);
const addon = loadNativeAddon();
if (addon === null) {
  console.error(`tap-sender: ${addonUnavailableReason()}`);
  process.exit(2);
}
const payload = Buffer.from(hex, 'hex');
const seconds = Math.min(Number(secondsText), MAX_SECONDS);
const socket = UdpBatchSocket.open(addon, address.includes(':') ? 'udp6' : 'udp4', '0.0.0.0', 0, 0);
socket.connect(address, Number(portText));
const bytes = new Uint8Array(payload.length);
bytes.set(payload);
// Every datagram of the batch is the same bytes: offsets all 0.
const offsets = new Uint32Array(BATCH);
const lengths = new Uint32Array(BATCH).fill(payload.length);
let sent = 0;
let refused = 0;
const started = performance.now();
const until = started + seconds * 1000;
while (performance.now() < until) {
  for (let i = 0; i < 64; i++) {
    const n = socket.send(bytes, offsets, lengths, BATCH, null);
    if (n > 0) sent += n;
    else refused++;
  }
}
const elapsed = (performance.now() - started) / 1000;
socket.close();
console.log(JSON.stringify({ sent, refused, seconds: elapsed }));
