/**
 * A client of the control API for the `nfvisor` subcommands that talk to a running host. It
 * speaks HTTP over TCP (`http://127.0.0.1:9180`) or a Unix socket (`unix:/run/nfvisor.sock`), and
 * turns every failure into an NfvError: the server's own code for an error reply, and
 * NFV_ERR_CONTROL_UNREACHABLE when nothing (or something else) answers.
 *
 * @example
 * const client = new ControlClient('http://127.0.0.1:9180', process.env.NFVISOR_TOKEN);
 * const status = await client.get<HostStatus>('/v1/status');
 */
import { request, type RequestOptions } from 'node:http';
import { type ErrorCode, ErrorCodes, NfvError } from '../errors.js';

export const DEFAULT_CONTROL_URL = 'http://127.0.0.1:9180';

export class ControlClient {
  private readonly target: { socketPath: string } | { host: string; port: number };
  private readonly prefix: string;

  constructor(
    private readonly url: string,
    private readonly token: string | undefined,
    private readonly timeoutMs = 5000,
  ) {
    if (url.startsWith('unix:')) {
      this.target = { socketPath: url.slice(5) };
      this.prefix = '';
      return;
    }
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new NfvError('NFV_ERR_BAD_ARGUMENT', `control address ${url} is not a URL`, { field: 'control' });
    }
    if (parsed.protocol !== 'http:' || parsed.search !== '' || parsed.username !== '')
      throw new NfvError(
        'NFV_ERR_BAD_ARGUMENT',
        `control address ${url} must be http://host:port or unix:PATH`,
        {
          field: 'control',
        },
      );
    this.target = { host: parsed.hostname.replace(/^\[|\]$/g, ''), port: Number(parsed.port || 80) };
    this.prefix = parsed.pathname.replace(/\/$/, '');
  }

  get<T>(path: string): Promise<T> {
    return this.send<T>('GET', path);
  }

  post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.send<T>('POST', path, body);
  }

  /** A POST whose success is not JSON (a pcap file): the body's bytes; an error reply is still an NfvError. */
  postForBytes(path: string, body: unknown = {}): Promise<Buffer> {
    return this.send<Buffer>('POST', path, body, true);
  }

  private send<T>(method: string, path: string, body?: unknown, raw = false): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    if (payload !== undefined) headers['content-type'] = 'application/json';
    const options: RequestOptions = { ...this.target, method, path: this.prefix + path, headers };
    const unreachable = (why: string, cause?: unknown): NfvError =>
      new NfvError('NFV_ERR_CONTROL_UNREACHABLE', `${this.url}: ${why}`, { field: 'control' }, { cause });
    return new Promise<T>((resolve, reject) => {
      const req = request(options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (e) => reject(unreachable('the connection broke', e)));
        res.on('end', () => {
          const bytes = Buffer.concat(chunks);
          const status = res.statusCode ?? 0;
          if (raw && status >= 200 && status < 300) return resolve(bytes as T);
          const text = bytes.toString('utf8');
          let data: unknown;
          try {
            data = JSON.parse(text);
          } catch {
            return reject(unreachable(`answered HTTP ${res.statusCode} without JSON (not a control API?)`));
          }
          if (status >= 200 && status < 300) return resolve(data as T);
          reject(fromReply(data, status) ?? unreachable(`answered HTTP ${status} (not a control API?)`));
        });
      });
      req.setTimeout(this.timeoutMs, () => req.destroy(unreachable(`no answer in ${this.timeoutMs} ms`)));
      req.on('error', (e) =>
        reject(
          e instanceof NfvError
            ? e
            : unreachable(
                `cannot connect (${(e as NodeJS.ErrnoException).code ?? e.message}); is the host running with --control?`,
                e,
              ),
        ),
      );
      req.end(payload);
    });
  }
}

/** The NfvError an error reply `{ code, message, detail }` stands for, or null if it is not one. */
function fromReply(data: unknown, status: number): NfvError | null {
  if (typeof data !== 'object' || data === null) return null;
  const { code, message, detail } = data as { code?: unknown; message?: unknown; detail?: unknown };
  if (typeof code !== 'string' || !(code in ErrorCodes)) return null;
  // The server's message already ends in its code; NfvError adds it again.
  const text = typeof message === 'string' ? message.replace(/ \(NFV_ERR_[A-Z_]+\)$/, '') : `HTTP ${status}`;
  const extra = typeof detail === 'object' && detail !== null ? (detail as Record<string, unknown>) : {};
  // Locating fields (file, line, field) are the server's, not this process's: keep them as data only.
  return new NfvError(code as ErrorCode, text, { status, ...extra, field: undefined, file: undefined });
}
