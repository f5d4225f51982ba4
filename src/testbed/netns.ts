/**
 * A namespace testbed for system tests and `nfvisor testbed`: network namespaces, veth pairs, addresses and kernel VXLAN
 * devices made with iproute2, commands run inside a namespace with `ip netns exec`, background
 * processes (tshark, servers) tracked, and everything removed by `teardown()`.
 *
 * Every name starts with a per-run prefix (`nfv<pid>` by default), so a run never touches what it
 * did not create and `leftovers()` can prove a clean teardown. Interface names are limited to 15
 * bytes by the kernel (IFNAMSIZ − 1), so suffixes are short. Every command has a timeout.
 *
 * Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for `ip netns`) and the tools named in
 * test/system/README.md; `requireTools()` fails with the Debian packages to install.
 *
 * A testbed object can also be made for a prefix some earlier process used (`nfvisor testbed
 * down`): `teardown()` sweeps by prefix, killing every process inside the namespaces it finds.
 *
 * @example
 * const bed = new Testbed();
 * after(() => bed.teardown());
 * const a = await bed.addNamespace('a');
 * const { host, peer } = await bed.addVethPair('a0', 'a1', a);
 * await bed.addAddress(host, '198.18.0.1/30');
 * await bed.exec(a, 'ping', ['-c', '1', '198.18.0.1']);
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';

/** Longest interface name the kernel accepts. */
const IFNAMSIZ_MAX = 15;
const DEFAULT_TIMEOUT_MS = 10_000;
const KILL_GRACE_MS = 2_000;

/** Tools a system test may need, with the Debian package that provides each. */
export const TOOL_PACKAGES: Record<string, string> = {
  ip: 'iproute2',
  ss: 'iproute2',
  ping: 'iputils-ping',
  tshark: 'tshark',
  python3: 'python3',
  curl: 'curl',
  iperf3: 'iperf3',
  nft: 'nftables',
};

export interface RunResult {
  stdout: string;
  stderr: string;
}

export interface VxlanDeviceOptions {
  /** Device name suffix (the device is `<prefix><suffix>`). */
  suffix: string;
  vni: number;
  /** Underlay address of the remote endpoint (where BUM and unknown unicast go). */
  remote: string;
  /** Local underlay address (source of the outer packets). */
  local: string;
  /** Underlay device. */
  dev: string;
  /** UDP destination (and listening) port; 4789 by default. */
  dstport?: number;
}

/** Runs a command with a timeout; rejects with its stderr on a non-zero exit or a timeout. */
export function run(
  command: string,
  args: readonly string[],
  timeoutMs = DEFAULT_TIMEOUT_MS,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (error) {
          const why = error.killed ? `timed out after ${timeoutMs} ms` : `exit ${String(error.code)}`;
          reject(new Error(`${command} ${args.join(' ')}: ${why}\n${stderr.trim()}`, { cause: error }));
        } else resolve({ stdout, stderr });
      },
    );
  });
}

/** True when the process can manage namespaces (root). */
export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Throws a clear message unless the process is root. System tests fail, never skip. */
export function requireRoot(what: string): void {
  if (!isRoot())
    throw new Error(
      `${what} needs root (network namespaces, veth and vxlan devices): run \`npm run test:system\` as root`,
    );
}

/** Throws naming the missing tools and the Debian packages that provide them. */
export async function requireTools(tools: readonly string[]): Promise<void> {
  const missing: string[] = [];
  for (const tool of tools) {
    try {
      await run('sh', ['-c', `command -v ${tool}`], 2_000);
    } catch {
      missing.push(tool);
    }
  }
  if (missing.length > 0) {
    const packages = missing.map((t) => TOOL_PACKAGES[t] ?? t).join(' ');
    throw new Error(`missing ${missing.join(', ')}: apt-get install -y --no-install-recommends ${packages}`);
  }
}

export class Testbed {
  /** Prefix of every namespace and interface this testbed makes. */
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  /** Interfaces made in the root namespace (deleting one end of a veth deletes both). */
  private readonly rootLinks: string[] = [];
  private readonly processes: ChildProcess[] = [];

  constructor(prefix = `nfv${process.pid}`) {
    if (!/^[a-z][a-z0-9]*$/.test(prefix) || prefix.length > 11)
      throw new Error(`testbed prefix '${prefix}': lowercase letters and digits, at most 11`);
    this.prefix = prefix;
  }

  /** `<prefix><suffix>`, checked against the kernel's 15-byte limit. */
  name(suffix: string): string {
    const name = `${this.prefix}${suffix}`;
    if (name.length > IFNAMSIZ_MAX || !/^[a-z0-9-]+$/.test(suffix))
      throw new Error(`interface name '${name}' is longer than ${IFNAMSIZ_MAX} bytes or has odd characters`);
    return name;
  }

  /** Creates namespace `<prefix>-<suffix>` with its loopback up; returns its name. */
  async addNamespace(suffix: string): Promise<string> {
    const ns = `${this.prefix}-${suffix}`;
    await run('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    // No IPv6 autoconfiguration chatter (router solicitations, DAD, MLD) in captures.
    // (/proc/sys rather than sysctl(8), which needs procps.)
    await this.exec(ns, 'sh', [
      '-c',
      'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6',
    ]);
    await this.ip(ns, ['link', 'set', 'lo', 'up']);
    return ns;
  }

  /**
   * Creates a veth pair `<prefix><hostSuffix>` (root namespace) ↔ `<prefix><peerSuffix>` (moved
   * into `peerNs` when given) and sets both up.
   */
  async addVethPair(
    hostSuffix: string,
    peerSuffix: string,
    peerNs?: string,
  ): Promise<{ host: string; peer: string }> {
    const host = this.name(hostSuffix);
    const peer = this.name(peerSuffix);
    await run('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', peer]);
    this.rootLinks.push(host);
    if (peerNs !== undefined) await run('ip', ['link', 'set', peer, 'netns', peerNs]);
    await this.ip(undefined, ['link', 'set', host, 'up']);
    await this.ip(peerNs, ['link', 'set', peer, 'up']);
    return { host, peer };
  }

  /**
   * Creates a veth pair `<prefix><suffixA>` in namespace `nsA` ↔ `<prefix><suffixB>` in `nsB`
   * (made in the root namespace, then moved) and sets both up.
   */
  async addVethBetween(
    suffixA: string,
    nsA: string,
    suffixB: string,
    nsB: string,
  ): Promise<[string, string]> {
    const a = this.name(suffixA);
    const b = this.name(suffixB);
    await run('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
    await run('ip', ['link', 'set', a, 'netns', nsA]);
    await run('ip', ['link', 'set', b, 'netns', nsB]);
    await this.ip(nsA, ['link', 'set', a, 'up']);
    await this.ip(nsB, ['link', 'set', b, 'up']);
    return [a, b];
  }

  /** Adds `cidr` (e.g. '10.99.0.1/24') to `dev`, in `ns` or the root namespace. */
  async addAddress(dev: string, cidr: string, ns?: string): Promise<void> {
    await this.ip(ns, ['addr', 'add', cidr, 'dev', dev]);
  }

  /** Creates a kernel VXLAN device in `ns` (or the root namespace) and sets it up; returns its name. */
  async addVxlan(ns: string | undefined, o: VxlanDeviceOptions): Promise<string> {
    const dev = this.name(o.suffix);
    await this.ip(ns, [
      'link',
      'add',
      dev,
      'type',
      'vxlan',
      'id',
      String(o.vni),
      'remote',
      o.remote,
      'local',
      o.local,
      'dstport',
      String(o.dstport ?? 4789),
      'dev',
      o.dev,
    ]);
    if (ns === undefined) this.rootLinks.push(dev);
    await this.ip(ns, ['link', 'set', dev, 'up']);
    return dev;
  }

  /**
   * Turns transmit checksum offload off on `dev` in `ns` (what `ethtool -K dev tx off` does, through
   * the SIOCETHTOOL ioctl from python3, as ethtool is not installed everywhere). A veth "offloads"
   * checksums by never computing them: a TCP segment leaves a namespace with only its pseudo-header
   * sum, which a kernel peer trusts but a user-space endpoint reading the VXLAN datagram receives
   * as is. With offload off on the underlay, the kernel computes the inner checksum before
   * encapsulating.
   */
  async disableTxChecksum(ns: string | undefined, dev: string): Promise<void> {
    const script = [
      'import array, fcntl, socket, struct, sys',
      'SIOCETHTOOL, ETHTOOL_STXCSUM = 0x8946, 0x17',
      'value = array.array("I", [ETHTOOL_STXCSUM, 0])',
      's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      'fcntl.ioctl(s, SIOCETHTOOL, struct.pack("16sP", sys.argv[1].encode(), value.buffer_info()[0]))',
    ].join('\n');
    if (ns === undefined) await run('python3', ['-c', script, dev]);
    else await this.exec(ns, 'python3', ['-c', script, dev]);
  }

  /** Runs `ip <args>` in `ns` (root namespace when undefined). */
  ip(ns: string | undefined, args: readonly string[], timeoutMs?: number): Promise<RunResult> {
    return ns === undefined ? run('ip', args, timeoutMs) : run('ip', ['-n', ns, ...args], timeoutMs);
  }

  /** Runs a command inside `ns` with `ip netns exec`, bounded by `timeoutMs`. */
  exec(ns: string, command: string, args: readonly string[], timeoutMs?: number): Promise<RunResult> {
    return run('ip', ['netns', 'exec', ns, command, ...args], timeoutMs);
  }

  /**
   * Starts a background process (inside `ns` when given), killed by `teardown()` at the latest.
   * Its output is collected in the returned `output()`.
   */
  start(ns: string | undefined, command: string, args: readonly string[]): BackgroundProcess {
    const argv = ns === undefined ? [command, ...args] : ['ip', 'netns', 'exec', ns, command, ...args];
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.processes.push(child);
    return new BackgroundProcess(child);
  }

  /**
   * Starts a process inside `ns` that outlives this one (`nfvisor testbed up` leaves servers
   * running): its own session, output to /dev/null. `teardown()` by prefix still kills it, with
   * every other process inside the testbed's namespaces.
   */
  startDetached(ns: string, command: string, args: readonly string[]): void {
    const child = spawn('ip', ['netns', 'exec', ns, command, ...args], { stdio: 'ignore', detached: true });
    child.unref();
  }

  /** Namespaces made by this testbed or an earlier one with the same prefix. */
  existingNamespaces(): Promise<string[]> {
    return this.sweepNamespaces();
  }

  /**
   * Kills the background processes, deletes the namespaces (and with them every interface inside)
   * and the root-namespace interfaces; then sweeps anything else carrying the prefix. Never throws:
   * teardown runs in `after()` even when the test failed, and reports what it could not remove.
   */
  async teardown(): Promise<string[]> {
    const problems: string[] = [];
    for (const child of this.processes) await stopProcess(child);
    for (const ns of await this.sweepNamespaces()) {
      try {
        const pids = (await run('ip', ['netns', 'pids', ns], 2_000)).stdout.split(/\s+/).filter(Boolean);
        for (const pid of pids) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            // Already gone.
          }
        }
        await run('ip', ['netns', 'del', ns]);
      } catch (error) {
        problems.push(String(error));
      }
    }
    for (const link of await this.sweepLinks()) {
      try {
        await run('ip', ['link', 'del', link]);
      } catch (error) {
        // A veth end disappears with its peer's namespace; only report what is still there.
        if ((await this.sweepLinks()).includes(link)) problems.push(String(error));
      }
    }
    if (problems.length > 0)
      console.error(`testbed ${this.prefix}: teardown problems:\n${problems.join('\n')}`);
    return problems;
  }

  /** Namespaces and root-namespace interfaces that still carry the prefix (empty after a clean teardown). */
  async leftovers(): Promise<string[]> {
    return [...(await this.sweepNamespaces()), ...(await this.sweepLinks())];
  }

  private async sweepNamespaces(): Promise<string[]> {
    const out = (await run('ip', ['netns', 'list'], 5_000)).stdout;
    const names = out.split('\n').map((line) => line.split(' ')[0]);
    return names.filter((n) => n.startsWith(`${this.prefix}-`));
  }

  private async sweepLinks(): Promise<string[]> {
    const out = (await run('ip', ['-o', 'link', 'show'], 5_000)).stdout;
    const names: string[] = [];
    for (const line of out.split('\n')) {
      // "7: nfv123a0@if6: <BROADCAST,..." → nfv123a0
      const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1];
      if (name?.startsWith(this.prefix) === true) names.push(name);
    }
    return names;
  }
}

/**
 * Removes what crashed earlier runs left behind: namespaces and interfaces named `<family><pid>…`
 * whose process no longer exists (a run that was killed before its `teardown()`). Returns the
 * prefixes swept. Prefixes of live processes (parallel runs) are left alone.
 */
export async function sweepStale(family: string): Promise<string[]> {
  const names = [
    ...(await run('ip', ['netns', 'list'], 5_000)).stdout.split('\n').map((line) => line.split(' ')[0]),
    ...(await run('ip', ['-o', 'link', 'show'], 5_000)).stdout
      .split('\n')
      .map((line) => /^\d+:\s+([^:@\s]+)/.exec(line)?.[1] ?? ''),
  ];
  const pattern = new RegExp(`^(${family}(\\d+))`);
  const stale = new Set<string>();
  for (const name of names) {
    const match = pattern.exec(name);
    if (match === null || match[2] === String(process.pid)) continue;
    try {
      process.kill(Number(match[2]), 0);
    } catch {
      stale.add(match[1]);
    }
  }
  for (const prefix of stale) await new Testbed(prefix).teardown();
  return [...stale];
}

/** A process started by `Testbed.start`. */
export class BackgroundProcess {
  private stdout = '';
  private stderr = '';
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (chunk: Buffer) => (this.stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode);
      else child.once('close', (code) => resolve(code));
    });
  }

  output(): { stdout: string; stderr: string } {
    return { stdout: this.stdout, stderr: this.stderr };
  }

  /** Resolves when `pattern` appears on stdout or stderr; rejects after `timeoutMs` or on exit. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<void> {
    return this.waitUntil(
      (out) => pattern.test(out.stdout) || pattern.test(out.stderr),
      timeoutMs,
      String(pattern),
    );
  }

  /**
   * Resolves when `ready(output)` holds (checked on every chunk of output); rejects after
   * `timeoutMs` or when the process exits first.
   */
  waitUntil(
    ready: (out: { stdout: string; stderr: string }) => boolean,
    timeoutMs: number,
    what = 'a condition',
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      if (ready(this.output())) return resolve();
      const onData = (): void => {
        if (ready(this.output())) finish();
      };
      const timer = setTimeout(
        () => fail(new Error(`timed out after ${timeoutMs} ms waiting for ${what}:\n${this.stderr}`)),
        timeoutMs,
      );
      const onClose = (): void => fail(new Error(`exited before ${what}:\n${this.stderr}`));
      const cleanup = (): void => {
        clearTimeout(timer);
        this.child.stdout?.off('data', onData);
        this.child.stderr?.off('data', onData);
        this.child.off('close', onClose);
      };
      const finish = (): void => {
        cleanup();
        resolve();
      };
      const fail = (error: Error): void => {
        cleanup();
        reject(error);
      };
      // Listeners added after the collecting ones, so the text is already appended when they run.
      this.child.stdout?.on('data', onData);
      this.child.stderr?.on('data', onData);
      this.child.once('close', onClose);
    });
  }

  /** Sends SIGINT (tshark then writes out what it captured) and waits, SIGKILL after a grace period. */
  stop(): Promise<number | null> {
    return stopProcess(this.child, 'SIGINT').then(() => this.exited);
  }
}

async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
  await closed;
  clearTimeout(timer);
}

/** Two namespaces whose kernel vxlan devices tunnel to the root namespace over veth underlays. */
export interface VxlanPeers {
  /** Namespace names. */
  a: string;
  b: string;
  /** Root-namespace ends of the underlay veths (where nfvisor's endpoints bind and tshark listens). */
  hostA: string;
  hostB: string;
}

/**
 * Namespaces a and b, each with a veth underlay to the root namespace (`U.1` ↔ `U.2`, `V.1` ↔
 * `V.2`, two /30s given as their first three octets) and a kernel vxlan device with `vni` whose
 * remote is the root end; the overlay addresses go on the vxlan devices.
 *
 *   ns a  vx (overlayA) ─ a1 (U.2) ══ a0 (U.1)  root  b0 (V.1) ══ b1 (V.2) ─ vx (overlayB)  ns b
 */
export async function addVxlanPeers(
  bed: Testbed,
  o: { vni: number; underlayA: string; underlayB: string; overlayA: string; overlayB: string },
): Promise<VxlanPeers> {
  const a = await bed.addNamespace('a');
  const b = await bed.addNamespace('b');
  const la = await bed.addVethPair('a0', 'a1', a);
  const lb = await bed.addVethPair('b0', 'b1', b);
  await bed.addAddress(la.host, `${o.underlayA}.1/30`);
  await bed.addAddress(la.peer, `${o.underlayA}.2/30`, a);
  await bed.addAddress(lb.host, `${o.underlayB}.1/30`);
  await bed.addAddress(lb.peer, `${o.underlayB}.2/30`, b);
  const vxA = await bed.addVxlan(a, {
    suffix: 'vx',
    vni: o.vni,
    remote: `${o.underlayA}.1`,
    local: `${o.underlayA}.2`,
    dev: la.peer,
  });
  const vxB = await bed.addVxlan(b, {
    suffix: 'vx',
    vni: o.vni,
    remote: `${o.underlayB}.1`,
    local: `${o.underlayB}.2`,
    dev: lb.peer,
  });
  await bed.addAddress(vxA, o.overlayA, a);
  await bed.addAddress(vxB, o.overlayB, b);
  return { a, b, hostA: la.host, hostB: lb.host };
}
