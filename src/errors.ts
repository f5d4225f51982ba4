/**
 * The error registry: every error nfvisor reports to a person or across an isolate has a stable
 * `NFV_ERR_*` code from this table. Callers compare `code`, never message text or `instanceof`
 * (which does not survive a worker boundary); `toJSON()` gives `{ code, message, detail }`.
 * docs/errors.md is kept in step with this table by a test.
 */
export const ErrorCodes = {
  NFV_ERR_BAD_ADDRESS: 'An address or prefix does not follow its strict grammar.',
  NFV_ERR_BAD_ARGUMENT: 'A command-line option or API argument is out of range or malformed.',
  NFV_ERR_CAPTURE_FORMAT: 'A capture file is not pcap or pcapng, or a block or record in it is malformed.',
  NFV_ERR_CAPTURE_TRUNCATED: 'A capture file ends in the middle of a header, block or record.',
  NFV_ERR_CAPTURE_UNSUPPORTED: 'A capture file uses a link type or feature nfvisor does not read or write.',
  NFV_ERR_DEPLOY_INVALID:
    'A deployment file is not valid YAML or JSON or breaks the deployment schema; each problem names file, line, column and field.',
  NFV_ERR_IO: 'Reading or writing a file failed (missing, no permission, disk full).',
  NFV_ERR_PACKET_TOO_LARGE: 'A packet does not fit the buffer or frame size it must be written into.',
} as const;
export type ErrorCode = keyof typeof ErrorCodes;

/** Details that locate an error: a file and byte offset, or a file, line and field. */
export interface ErrorDetail {
  file?: string;
  offset?: number;
  line?: number;
  field?: string;
  [key: string]: unknown;
}

/**
 * An error with a registry code. @example
 * throw new NfvError('NFV_ERR_CAPTURE_TRUNCATED', 'record header cut short', { file, offset: 1234 })
 */
export class NfvError extends Error {
  readonly code: ErrorCode;
  readonly detail: ErrorDetail;

  constructor(code: ErrorCode, message: string, detail: ErrorDetail = {}, options?: { cause?: unknown }) {
    super(`${locate(detail)}${message} (${code})`, options);
    this.name = 'NfvError';
    this.code = code;
    this.detail = detail;
  }

  toJSON(): { code: ErrorCode; message: string; detail: ErrorDetail } {
    return { code: this.code, message: this.message, detail: this.detail };
  }
}

function locate(d: ErrorDetail): string {
  if (d.file === undefined) return d.field !== undefined ? `${d.field}: ` : '';
  if (d.line !== undefined) return `${d.file}:${d.line}${d.field !== undefined ? ` (${d.field})` : ''}: `;
  if (d.offset !== undefined) return `${d.file} at byte ${d.offset}: `;
  return `${d.file}: `;
}

/** True when `e` is (or crossed an isolate as) an NfvError with the given code. */
export function isNfvError(e: unknown, code?: ErrorCode): e is { code: ErrorCode; message: string } {
  if (typeof e !== 'object' || e === null || !('code' in e)) return false;
  const c = e.code;
  return typeof c === 'string' && c in ErrorCodes && (code === undefined || c === code);
}
