/**
 * The saslauthd wire protocol, as pure functions over bytes (no sockets here).
 *
 * Request: counted strings, each a big-endian u16 length and that many bytes, in the order
 * login, password, service, realm, and — only from newer (unreleased) clients — a 5th one,
 * the client address `ip;port`. Reply: a u16 length and the text (`OK…` / `NO…`), no NUL.
 * One request per connection.
 *
 * The 5th field is never waited for: 2.1.28 clients send 4 fields and then wait for the
 * reply, so a server that waits for a 5th deadlocks with them. It is used only when its
 * bytes arrived together with the first four.
 */

/** Largest accepted field: the C daemon's MAX_REQ_LEN; longer fields get the reply `NO `. */
export const MAX_FIELD_BYTES = 256;

/** Bytes of the length prefix in front of every field and of the reply. */
const LENGTH_PREFIX_BYTES = 2;

/** Largest reply text we send: libsasl2 reads at most 1023 bytes of it. */
export const MAX_REPLY_BYTES = 1023;

export const REQUEST_FIELDS = ['login', 'password', 'service', 'realm'] as const;
export type RequestFieldName = (typeof REQUEST_FIELDS)[number];

/** The four mandatory fields plus the optional client address, as raw bytes off the wire. */
export interface WireRequest {
  readonly login: Buffer;
  readonly password: Buffer;
  readonly service: Buffer;
  readonly realm: Buffer;
  /** The 5th field (`ip;port`), when it arrived with the rest. */
  readonly clientAddress?: Buffer;
}

export type DecodeResult =
  /** More bytes are needed. */
  | { readonly kind: 'incomplete' }
  /** A field announced more than MAX_FIELD_BYTES: answer `NO ` without reading further. */
  | { readonly kind: 'field-too-long'; readonly field: RequestFieldName; readonly length: number }
  /** `trailingBytes`: bytes that came after the request (and its 5th field) in the same data. */
  | { readonly kind: 'request'; readonly request: WireRequest; readonly trailingBytes: number };

/**
 * Incremental request reader: feed it chunks as they arrive, in any split (one byte at a
 * time works). It never keeps a reference to a chunk it was given (the caller may zero the
 * chunk after push) and zeroes its own copies, so password bytes do not linger.
 */
export class RequestDecoder {
  /** Our own copy of bytes not yet consumed (part of a field). */
  private pending: Buffer = Buffer.alloc(0);
  private readonly fields: Buffer[] = [];
  private finished = false;
  /** The fields went out in a request; their owner zeroes the password from then on. */
  private handedOver = false;

  /** Zeroes what an unfinished request left here (a password, perhaps) when its connection ends. */
  dispose(): void {
    this.pending.fill(0);
    this.pending = Buffer.alloc(0);
    if (!this.handedOver) for (const field of this.fields) field.fill(0);
    this.finished = true;
  }

  push(chunk: Buffer): DecodeResult {
    if (this.finished) return { kind: 'incomplete' };
    const data = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending.fill(0);
    this.pending = Buffer.alloc(0);
    try {
      return this.consume(data);
    } finally {
      if (data !== chunk) data.fill(0);
    }
  }

  private consume(data: Buffer): DecodeResult {
    let offset = 0;
    while (this.fields.length < REQUEST_FIELDS.length) {
      if (data.length - offset < LENGTH_PREFIX_BYTES) break;
      const length = data.readUInt16BE(offset);
      if (length > MAX_FIELD_BYTES) {
        this.finished = true;
        return { kind: 'field-too-long', field: REQUEST_FIELDS[this.fields.length]!, length };
      }
      if (data.length - offset - LENGTH_PREFIX_BYTES < length) break;
      const start = offset + LENGTH_PREFIX_BYTES;
      this.fields.push(Buffer.from(data.subarray(start, start + length)));
      offset = start + length;
    }
    if (this.fields.length < REQUEST_FIELDS.length) {
      this.pending = Buffer.from(data.subarray(offset));
      return { kind: 'incomplete' };
    }
    this.finished = true;
    const clientAddress = readOptionalField(data, offset);
    const consumed = offset + (clientAddress === undefined ? 0 : LENGTH_PREFIX_BYTES + clientAddress.length);
    this.handedOver = true;
    const [login, password, service, realm] = this.fields as [Buffer, Buffer, Buffer, Buffer];
    const request: WireRequest =
      clientAddress === undefined
        ? { login, password, service, realm }
        : { login, password, service, realm, clientAddress };
    return { kind: 'request', request, trailingBytes: data.length - consumed };
  }
}

/** A 5th counted string that is already complete in `bytes` at `offset`, else undefined. */
function readOptionalField(bytes: Buffer, offset: number): Buffer | undefined {
  if (bytes.length - offset < LENGTH_PREFIX_BYTES) return undefined;
  const length = bytes.readUInt16BE(offset);
  if (length > MAX_FIELD_BYTES) return undefined;
  const start = offset + LENGTH_PREFIX_BYTES;
  if (bytes.length - start < length) return undefined;
  return Buffer.from(bytes.subarray(start, start + length));
}

/** Encodes one request (what libsasl2 and testsaslauthd send). */
export function encodeRequest(fields: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const field of fields) {
    if (field.length > 0xffff) throw new RangeError('a field cannot exceed 65535 bytes');
    const prefix = Buffer.alloc(LENGTH_PREFIX_BYTES);
    prefix.writeUInt16BE(field.length, 0);
    parts.push(prefix, field);
  }
  return Buffer.concat(parts);
}

/** Encodes a reply: u16 length, then the text, no NUL. Text past MAX_REPLY_BYTES is cut. */
export function encodeReply(text: string): Buffer {
  const body = Buffer.from(text, 'latin1').subarray(0, MAX_REPLY_BYTES);
  const frame = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + body.length);
  frame.writeUInt16BE(body.length, 0);
  body.copy(frame, LENGTH_PREFIX_BYTES);
  return frame;
}

/**
 * What the C daemon's mechanisms see: a C string, cut at the first NUL byte
 * (`go\0od` is processed as `go`). Returns the same buffer when there is no NUL.
 */
export function cString(field: Buffer): Buffer {
  const nul = field.indexOf(0);
  return nul === -1 ? field : field.subarray(0, nul);
}

/** Reply decoding for clients: the text after the u16 length, once all of it arrived. */
export function decodeReply(bytes: Buffer): { text: Buffer; rest: Buffer } | undefined {
  if (bytes.length < LENGTH_PREFIX_BYTES) return undefined;
  const length = bytes.readUInt16BE(0);
  if (bytes.length < LENGTH_PREFIX_BYTES + length) return undefined;
  return {
    text: bytes.subarray(LENGTH_PREFIX_BYTES, LENGTH_PREFIX_BYTES + length),
    rest: bytes.subarray(LENGTH_PREFIX_BYTES + length),
  };
}

/** The C daemon's IPC-level replies, byte for byte. */
export const REPLY = {
  fieldTooLong: 'NO ',
  nullLogin: 'NO NULL login received',
  nullPassword: 'NO NULL password received',
  internalFailure: 'NO internal mechanism failure',
} as const;
