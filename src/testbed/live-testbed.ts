/**
 * The live testbed: a client and three backend servers in network namespaces, attached to nfvisor
 * through one kernel VXLAN tunnel, so that real `ping`, `curl` and `iperf3` cross an nfvisor chain
 * (firewall → NAT → load balancer → router) both ways. `nfvisor testbed up|down|status` and the
 * live system tests and benchmark build it here.
 *
 *   ns client  c1 10.77.0.2 ──┐            ns sw (a bridge)                 root namespace
 *   ns b11     s 10.77.1.11 ──┤                                           nfvisor VXLAN port
 *   ns b12     s 10.77.1.12 ──┼── br ── vx (VNI) ── u1 (U.2) ══ veth ══ u0 (U.1) ◀──▶ chain
 *   ns b13     s 10.77.1.13 ──┘          └─ or a TAP device nfvisor opened (attachTap)
 *
 * nfvisor is a router on a stick: the client's default route and the backends' route to the
 * NAT's address point at the router MAC, which only nfvisor's router NF uses (static neighbor
 * entries, no ARP), so every packet between the client's subnet and the backends' subnet goes
 * through the tunnel to nfvisor and back. One chain carries both directions, so one NAT and one
 * load balancer see each connection's packets both ways:
 *
 *   client → VIP:   firewall → NAT (src := 10.77.1.1) → LB (dst := a backend) → router (MACs, TTL)
 *   backend → NAT:  firewall → NAT (dst := client)    → LB (src := VIP)       → router
 *
 * The NAT filters endpoint-independently (RFC 4787): replies come from the backend the LB chose,
 * not from the VIP the NAT saw leave.
 *
 * Each backend runs a small HTTP server on ports 80 and 8080 that answers `<name> <client address
 * it saw>` and logs each request on stdout, and `iperf3 -s`. Only the underlay (U, a /30 in the
 * root namespace) must differ between testbeds running at once; the overlay lives in namespaces.
 */
import { Testbed, type BackgroundProcess } from './netns.js';

export const LIVE_VNI = 77;
/** The overlay: the same in every testbed (it lives inside the testbed's namespaces). */
export const LIVE = {
  clientAddress: '10.77.0.2',
  clientSubnet: '10.77.0.0/24',
  clientGateway: '10.77.0.1',
  /** The NAT's external address, on the backends' subnet: what the servers see. */
  natAddress: '10.77.1.1',
  backendSubnet: '10.77.1.0/24',
  backends: ['10.77.1.11', '10.77.1.12', '10.77.1.13'],
  /** The load balancer's virtual IP: HTTP on 80 and 8080 (three backends), iperf3 on 5201 (the first). */
  vip: '10.77.2.80',
  httpPort: 80,
  /** Served by the backends too, but the firewall drops it. */
  blockedPort: 8080,
  iperfPort: 5201,
  /** The MAC only nfvisor's router uses. */
  routerMac: '02:77:00:00:00:01',
  clientMac: '02:77:00:00:00:02',
  backendMacs: ['02:77:00:01:00:11', '02:77:00:01:00:12', '02:77:00:01:00:13'],
} as const;

export interface LiveTestbedOptions {
  /** Underlay /30 as its first three octets: nfvisor binds `U.1`, the switch's VXLAN device `U.2`. */
  underlay: string;
  /** MTU of the overlay links (client, backends, bridge, VXLAN); the underlay gets 100 more. */
  mtu?: number;
  /** Leave the servers running after this process exits (`nfvisor testbed up`). */
  detached?: boolean;
}

/** What `liveTestbedUp` built: namespace names and where nfvisor must bind. */
export interface LiveTestbed {
  client: string;
  switch: string;
  backends: string[];
  /** Backend names as their HTTP servers say them (b11, b12, b13). */
  backendNames: string[];
  /** nfvisor's VXLAN port: bind here… */
  bind: string;
  /** …and send to the switch's VXLAN device here. */
  remote: string;
  vni: number;
  /** The underlay veth in the root namespace. */
  underlayDev: string;
  /** The HTTP servers (absent when detached). */
  servers: BackgroundProcess[];
}

/**
 * The HTTP server each backend runs (`node -e`): answers every request with its name and the
 * address and port it saw the request come from, and prints `request <port> <address>` per request.
 */
const HTTP_SERVER = `
const http = require('node:http');
const name = process.argv[1];
for (const port of process.argv.slice(2).map(Number)) {
  http.createServer((req, res) => {
    console.log('request ' + port + ' ' + req.socket.remoteAddress);
    res.end(name + ' ' + req.socket.remoteAddress + ' ' + req.socket.remotePort + '\\n');
  }).listen(port, '0.0.0.0', () => console.log('listening ' + port));
}`;

/** Builds the live testbed in `bed` and starts the servers; throws (leaving cleanup to `bed.teardown()`) on failure. */
export async function liveTestbedUp(bed: Testbed, o: LiveTestbedOptions): Promise<LiveTestbed> {
  const mtu = o.mtu ?? 1500;
  const U = o.underlay;
  const client = await bed.addNamespace('client');
  const sw = await bed.addNamespace('sw');
  const backendNames = LIVE.backends.map((a) => `b${a.split('.')[3]}`);
  const backends: string[] = [];
  for (const name of backendNames) backends.push(await bed.addNamespace(name));

  // The underlay and the switch's VXLAN device, enslaved to its bridge.
  const u = await bed.addVethPair('u0', 'u1', sw);
  await bed.ip(undefined, ['link', 'set', u.host, 'mtu', String(mtu + 100)]);
  await bed.ip(sw, ['link', 'set', u.peer, 'mtu', String(mtu + 100)]);
  await bed.addAddress(u.host, `${U}.1/30`);
  await bed.addAddress(u.peer, `${U}.2/30`, sw);
  await bed.disableTxChecksum(sw, u.peer);
  const vx = await bed.addVxlan(sw, {
    suffix: 'vx',
    vni: LIVE_VNI,
    remote: `${U}.1`,
    local: `${U}.2`,
    dev: u.peer,
  });
  const br = bed.name('br');
  await bed.ip(sw, ['link', 'add', br, 'type', 'bridge']);
  await bed.ip(sw, ['link', 'set', vx, 'mtu', String(mtu), 'master', br]);

  // Client and backends hang off the bridge.
  const attach = async (ns: string, suffix: string, mac: string, cidr: string): Promise<string> => {
    const [inner, port] = await bed.addVethBetween(`${suffix}i`, ns, `${suffix}s`, sw);
    await bed.ip(ns, ['link', 'set', inner, 'address', mac, 'mtu', String(mtu)]);
    await bed.ip(sw, ['link', 'set', port, 'mtu', String(mtu), 'master', br]);
    await bed.addAddress(inner, cidr, ns);
    return inner;
  };
  await bed.ip(sw, ['link', 'set', br, 'up']);
  const cdev = await attach(client, 'c', LIVE.clientMac, `${LIVE.clientAddress}/24`);
  await bed.ip(client, [
    'neigh',
    'replace',
    LIVE.clientGateway,
    'lladdr',
    LIVE.routerMac,
    'dev',
    cdev,
    'nud',
    'permanent',
  ]);
  await bed.ip(client, ['route', 'add', 'default', 'via', LIVE.clientGateway, 'dev', cdev]);
  for (let i = 0; i < backends.length; i++) {
    const ns = backends[i];
    const dev = await attach(ns, backendNames[i], LIVE.backendMacs[i], `${LIVE.backends[i]}/24`);
    await bed.ip(ns, [
      'neigh',
      'replace',
      LIVE.natAddress,
      'lladdr',
      LIVE.routerMac,
      'dev',
      dev,
      'nud',
      'permanent',
    ]);
    // The VIP on loopback answers `ping VIP` (the router sends ICMP for the VIP to the first backend).
    await bed.ip(ns, ['addr', 'add', `${LIVE.vip}/32`, 'dev', 'lo']);
  }

  const servers: BackgroundProcess[] = [];
  const ports = [String(LIVE.httpPort), String(LIVE.blockedPort)];
  for (let i = 0; i < backends.length; i++) {
    const http = ['-e', HTTP_SERVER, backendNames[i], ...ports];
    const iperf = ['-s', '-p', String(LIVE.iperfPort)];
    if (o.detached === true) {
      bed.startDetached(backends[i], process.execPath, http);
      bed.startDetached(backends[i], 'iperf3', iperf);
    } else {
      const server = bed.start(backends[i], process.execPath, http);
      servers.push(server);
      bed.start(backends[i], 'iperf3', iperf);
    }
  }
  for (const server of servers)
    await server.waitUntil(
      (out) => /listening 8080/.test(out.stdout) && /listening 80\n/.test(out.stdout),
      10_000,
      'the HTTP server',
    );
  return {
    client,
    switch: sw,
    backends,
    backendNames,
    bind: `${U}.1`,
    remote: `${U}.2`,
    vni: LIVE_VNI,
    underlayDev: u.host,
    servers,
  };
}

/**
 * The TAP attachment instead of the tunnel: `device`, a TAP device nfvisor's TapPort has created
 * (so it exists only while the port holds it open), moves into the switch namespace and joins its
 * bridge — the way a hypervisor plugs a VM's NIC into a bridge. Frames nfvisor writes to the
 * device come out of the bridge port and vice versa. Run nfvisor with a TAP port *or* a VXLAN port
 * bound to the underlay, not both (the bridge would loop their frames).
 */
export async function attachTap(bed: Testbed, tb: LiveTestbed, device: string, mtu = 1500): Promise<void> {
  // The bridge may have learned the router's MAC behind the VXLAN device (an earlier run over the
  // tunnel): taking that port down and up forgets what it learned, so frames find the TAP port.
  await bed.ip(tb.switch, ['link', 'set', bed.name('vx'), 'down']);
  await bed.ip(tb.switch, ['link', 'set', bed.name('vx'), 'up']);
  await bed.ip(undefined, ['link', 'set', device, 'netns', tb.switch]);
  await bed.ip(tb.switch, ['link', 'set', device, 'mtu', String(mtu), 'master', bed.name('br'), 'up']);
}

/** The chain's NF configurations for the live testbed (the same as examples/live-fw-nat-lb.yaml). */
export function liveNfConfigs(): {
  firewall: unknown;
  nat: unknown;
  loadBalancer: unknown;
  router: unknown;
} {
  const backends = LIVE.backends.map((address) => ({ address }));
  return {
    // Tables sized for a testbed, not a data centre (snapshots, twice a second, follow the
    // connections held since 2026-12-07; before, a 65,536-entry conntrack copy stalled the chain).
    firewall: {
      maxConnections: 4096,
      default: 'accept',
      rules: [{ action: 'drop', protocol: 'tcp', dstPort: String(LIVE.blockedPort) }],
    },
    nat: {
      external: LIVE.natAddress,
      inside: LIVE.clientSubnet,
      maxFlows: 4096,
      filtering: 'endpoint-independent',
    },
    loadBalancer: {
      maxConnections: 4096,
      services: [
        { vip: LIVE.vip, port: LIVE.httpPort, protocol: 'tcp', backends },
        { vip: LIVE.vip, port: LIVE.blockedPort, protocol: 'tcp', backends },
        // iperf3's control and data connections must meet the same server: one backend.
        { vip: LIVE.vip, port: LIVE.iperfPort, protocol: 'any', backends: backends.slice(0, 1) },
      ],
    },
    router: {
      mac: LIVE.routerMac,
      address: LIVE.natAddress,
      routes: [
        { prefix: LIVE.clientSubnet, nextHop: 'connected' },
        { prefix: LIVE.backendSubnet, nextHop: 'connected' },
        { prefix: `${LIVE.vip}/32`, nextHop: LIVE.backends[0] },
      ],
      neighbors: [
        { address: LIVE.clientAddress, mac: LIVE.clientMac },
        ...LIVE.backends.map((address, i) => ({ address, mac: LIVE.backendMacs[i] })),
      ],
    },
  };
}

/** Namespaces a complete live testbed has (for `status` and an idempotent `up`). */
export function liveNamespaceSuffixes(): string[] {
  return ['client', 'sw', ...LIVE.backends.map((a) => `b${a.split('.')[3]}`)];
}
