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
  NFV_ERR_IPFIX_MALFORMED:
    'An IPFIX message is malformed: a length or set does not add up, or a data set uses a template not yet seen.',
  NFV_ERR_PACKET_TOO_LARGE: 'A packet does not fit the buffer or frame size it must be written into.',
  NFV_ERR_IMAGE_BUILD:
    'An NF image could not be built: the source does not bundle, or its default export is not a defineNf declaration.',
  NFV_ERR_IMAGE_CAPABILITY:
    "An NF image's code imports a Node module (fs, net, http, dgram, child_process, worker_threads …) that its manifest does not request as a capability, or a deployment's capabilities for an NF differ from what its image's manifest asks for.",
  NFV_ERR_CAPABILITY_REFUSED:
    "A guest's code tried to reach something its deployment does not grant (a Node module such as fs or net, the host process, shared memory); the attempt failed inside the NF and was counted in the NF's refusals.",
  NFV_ERR_IMAGE_DIGEST:
    "An NF image's content does not hash to its digest: it was changed after it was built (tampered or corrupted).",
  NFV_ERR_IMAGE_INVALID: 'An NF image, image reference, archive or manifest is malformed.',
  NFV_ERR_IMAGE_NAME:
    "An NF image's manifest name, or the name its signature was made for, is not the name it is referred to by.",
  NFV_ERR_IMAGE_NOT_FOUND: 'No NF image with that tag or digest is in the image store.',
  NFV_ERR_IMAGE_ROLLBACK:
    'An NF image is older than a version of the same name verified before; installing it needs an explicit allow-rollback.',
  NFV_ERR_IMAGE_SDK_VERSION:
    'An NF image was built against an SDK API version this nfvisor does not support.',
  NFV_ERR_IMAGE_SIGNATURE: "An NF image's signature does not verify with the key it names.",
  NFV_ERR_IMAGE_SIGNATURE_DIGEST:
    'An NF image carries a valid signature made for another digest (a signature moved onto other content).',
  NFV_ERR_IMAGE_UNSIGNED: 'An NF image has no signature and unsigned images were not explicitly allowed.',
  NFV_ERR_IMAGE_UNTRUSTED: 'An NF image is signed by a key the trust policy does not allow for its name.',
  NFV_ERR_KEY_INVALID: 'A signing or public key file is missing, unreadable or not an Ed25519 key.',
  NFV_ERR_TRUST_POLICY: 'A trust policy file is malformed, or a key in it does not match its key id.',
  NFV_ERR_CONTROL_BAD_REQUEST:
    'A control API request is malformed: invalid JSON, an unknown or missing field, a value out of range, or an unsupported content type.',
  NFV_ERR_CONTROL_BUSY:
    'The control server refuses a live stream because the most it serves at once are open.',
  NFV_ERR_CONTROL_CONFLICT:
    "A control API request conflicts with the host's state: the NF is quarantined or the host is stopping.",
  NFV_ERR_CONTROL_FORBIDDEN:
    "The control API token is valid but its role (viewer, operator, admin) is below the route's minimum.",
  NFV_ERR_CONTROL_INTERNAL:
    'The control server failed on a request it should have answered (a bug; its log has the stack).',
  NFV_ERR_CONTROL_NOT_FOUND: 'No control API route has that method and path.',
  NFV_ERR_CONTROL_ROUTE_UNGUARDED:
    'A control API route was registered without a minimum role in the route table (a bug, refused at startup).',
  NFV_ERR_CONTROL_TOO_LARGE: "A control API request body is larger than the server's body limit.",
  NFV_ERR_CONTROL_UNAUTHORIZED:
    'A control API request has no bearer token, a malformed one, or one the server does not know (or has revoked).',
  NFV_ERR_CONTROL_UNREACHABLE:
    'The control server of a running host could not be reached at the given address, or answered something that is not the control API.',
  NFV_ERR_NF_NOT_FOUND: 'No NF instance of that name runs in the host.',
  NFV_ERR_RECONFIGURE_FAILED:
    'A live reconfiguration failed while it was prepared (an image, a configuration, a port or a new guest that would not start) and was rolled back; the running deployment is unchanged.',
  NFV_ERR_RECONFIGURE_REFUSED:
    'A change cannot be applied to a running host (pool, ring or batch size, queue target, a port kind that cannot be opened live, a host that is not running, or another reconfiguration under way).',
  NFV_ERR_TOKEN_STORE:
    'A control token file is malformed, or holds a token entry with an unknown role or a bad hash.',
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
