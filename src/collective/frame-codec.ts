/**
 * Byte encoding of the ring's gRPC messages (proto/bbn/v1/collective.proto).
 *
 * The hot path (RingResponse.chunk) is framed here by hand, because protobufjs copies a 1 MB
 * payload into a fresh buffer on encode and hands back an unaligned view on decode. The bytes are
 * ordinary canonical protobuf, byte-identical to what the generated `bbn.v1.RingResponse.encode`
 * writes (fields in number order, zero values omitted, `payload` last), and the decoder accepts
 * any valid encoding (any field order, unknown fields skipped). `frame-codec.test.ts` checks
 * both directions against the generated code. Control messages (hello, accept, abort) are rare
 * and go through the generated code.
 */
import { bbn } from '../generated/bbn.js';
import type { WireDtypeName } from './bf16.ts';

/** Every field of a RingChunk except the payload. */
export interface ChunkHeader {
  readonly runId: string;
  readonly generation: number;
  readonly senderRank: number;
  readonly sequence: number;
  readonly epoch: number;
  readonly step: number;
  /** bbn.v1.RingPhase value (enums are int32 on the wire: must be < 2^31). */
  readonly phase: number;
  readonly phaseStep: number;
  readonly segment: number;
  readonly chunkIndex: number;
  readonly offset: number;
  readonly length: number;
  readonly totalLength: number;
  /** bbn.v1.WireDtype value (< 2^31). */
  readonly dtype: number;
}

/** A decoded chunk: its header and a view of its payload bytes (not copied, any alignment). */
export interface DecodedChunk extends ChunkHeader {
  readonly payload: Uint8Array;
}

/** A decoded RingResponse. */
export type DecodedResponse =
  | { readonly kind: 'chunk'; readonly chunk: DecodedChunk }
  | { readonly kind: 'accept'; readonly accept: bbn.v1.RingAccept }
  | { readonly kind: 'abort'; readonly abort: bbn.v1.RingAbort };

/** Bytes that are not a valid RingResponse or RingRequest. */
export class FrameDecodeError extends Error {
  override name = 'FrameDecodeError';
}

/** Maps the wire dtype enum to its name; undefined for anything else. */
export function dtypeName(dtype: number): WireDtypeName | undefined {
  if (dtype === bbn.v1.WireDtype.WIRE_DTYPE_F32) return 'f32';
  if (dtype === bbn.v1.WireDtype.WIRE_DTYPE_BF16) return 'bf16';
  return undefined;
}

/** Maps a dtype name to the wire enum. */
export function dtypeValue(name: WireDtypeName): number {
  return name === 'f32' ? bbn.v1.WireDtype.WIRE_DTYPE_F32 : bbn.v1.WireDtype.WIRE_DTYPE_BF16;
}

/** The chunk header's integer fields, in field-number order (2..14). */
export const UINT_FIELDS = [
  'generation',
  'senderRank',
  'sequence',
  'epoch',
  'step',
  'phase',
  'phaseStep',
  'segment',
  'chunkIndex',
  'offset',
  'length',
  'totalLength',
  'dtype',
] as const; // field numbers 2..14, in order
const RESPONSE_CHUNK_FIELD = 2;
const PADDING_FIELD = 15;
const PAYLOAD_FIELD = 16;
/** Tag bytes of field 16 (wire type 2): 16 << 3 | 2 = 130, a two-byte varint. */
const PAYLOAD_TAG = [0x82, 0x01];
/** grpc-js hands over each message inside its 5-byte length-prefixed frame buffer. */
const GRPC_PREFIX = 5;

function varintSize(v: number): number {
  let size = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    size++;
  }
  return size;
}

function writeVarint(out: Uint8Array, at: number, v: number): number {
  while (v >= 0x80) {
    out[at++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  out[at++] = v;
  return at;
}

/** Sizes of a chunk frame with `pad` padding bytes. */
function layout(fixed: number, pad: number, payloadBytes: number): { inner: number; total: number } {
  const padField = pad > 0 ? 1 + varintSize(pad) + pad : 0;
  const inner = fixed + padField + PAYLOAD_TAG.length + varintSize(payloadBytes) + payloadBytes;
  return { inner, total: 1 + varintSize(inner) + inner };
}

/** Allocates frame buffers; the ring passes a pool, tests the default. */
export type FrameAllocator = (bytes: number) => Buffer;

/**
 * Allocates a RingResponse{chunk} frame for `payloadBytes` payload bytes and writes everything but
 * the payload; the caller writes the payload at `payloadAt`. Requires payloadBytes > 0.
 * `alignment_padding` is sized so that the payload sits at a multiple of 4 counting grpc-js's
 * 5-byte prefix, where receivers can view it as a Float32Array without copying.
 */
export function encodeChunkFrame(
  h: ChunkHeader,
  payloadBytes: number,
  alloc: FrameAllocator = Buffer.allocUnsafeSlow,
): { frame: Buffer; payloadAt: number } {
  const plan = planChunkFrame(h, payloadBytes);
  const frame = alloc(plan.total);
  return { frame, payloadAt: writeChunkHeader(h, plan, frame, 0) };
}

/** Sizes of one chunk frame, from `planChunkFrame`. */
export interface ChunkFramePlan {
  readonly runId: Buffer;
  readonly pad: number;
  readonly inner: number;
  /** Bytes of the whole RingResponse message, payload included. */
  readonly total: number;
  /** Bytes before the payload. */
  readonly headerBytes: number;
}

/** Computes the frame layout of a chunk with `payloadBytes` payload bytes (see encodeChunkFrame). */
export function planChunkFrame(h: ChunkHeader, payloadBytes: number): ChunkFramePlan {
  const runId = Buffer.from(h.runId, 'utf8');
  let fixed = 0;
  if (runId.length > 0) fixed += 1 + varintSize(runId.length) + runId.length;
  for (const key of UINT_FIELDS) {
    const v = h[key];
    if (v !== 0) fixed += 1 + varintSize(v);
  }
  let pad = 0;
  for (let k = 0; k <= 8; k++) {
    const { total } = layout(fixed, k, payloadBytes);
    if ((GRPC_PREFIX + total - payloadBytes) % 4 === 0) {
      pad = k;
      break;
    }
  }
  const { inner, total } = layout(fixed, pad, payloadBytes);
  return { runId, pad, inner, total, headerBytes: total - payloadBytes };
}

/**
 * Writes the bytes of a planned chunk frame that precede its payload into `out` at `at`; returns
 * where the payload starts. The raw-TCP transport sends these header bytes and then the payload
 * straight from the caller's array.
 */
export function writeChunkHeader(h: ChunkHeader, plan: ChunkFramePlan, out: Uint8Array, at: number): number {
  const { runId, pad, inner } = plan;
  out[at++] = (RESPONSE_CHUNK_FIELD << 3) | 2;
  at = writeVarint(out, at, inner);
  if (runId.length > 0) {
    out[at++] = (1 << 3) | 2;
    at = writeVarint(out, at, runId.length);
    out.set(runId, at);
    at += runId.length;
  }
  for (let i = 0; i < UINT_FIELDS.length; i++) {
    const v = h[UINT_FIELDS[i]];
    if (v === 0) continue;
    out[at++] = (i + 2) << 3;
    at = writeVarint(out, at, v);
  }
  if (pad > 0) {
    out[at++] = (PADDING_FIELD << 3) | 2;
    at = writeVarint(out, at, pad);
    out.fill(0, at, at + pad);
    at += pad;
  }
  out[at++] = PAYLOAD_TAG[0];
  out[at++] = PAYLOAD_TAG[1];
  return writeVarint(out, at, plan.total - plan.headerBytes);
}

/** A cursor over protobuf bytes with bounds checks that throw FrameDecodeError. */
class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  /** Reads a varint and returns its low 32 bits as an unsigned number. */
  uint32(): number {
    let result = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new FrameDecodeError(`truncated varint at byte ${this.pos}`);
      const b = this.buf[this.pos++];
      if (i < 5) result += (b & 0x7f) * 2 ** (7 * i);
      if (b < 0x80) return result % 2 ** 32;
    }
    throw new FrameDecodeError(`varint longer than 10 bytes at byte ${this.pos}`);
  }

  /** Returns [start, end) of a length-delimited field's bytes and moves past them. */
  bytes(): [number, number] {
    const len = this.uint32();
    const start = this.pos;
    if (len > this.end - start) {
      throw new FrameDecodeError(`length ${len} at byte ${start} runs past the end (${this.end})`);
    }
    this.pos = start + len;
    return [start, start + len];
  }

  /** Skips a field of wire type `wt`. */
  skip(wt: number, field: number): void {
    if (wt === 0) this.uint32();
    else if (wt === 1) this.advance(8);
    else if (wt === 2) this.bytes();
    else if (wt === 5) this.advance(4);
    else throw new FrameDecodeError(`field ${field} has unsupported wire type ${wt}`);
  }

  private advance(n: number): void {
    if (this.end - this.pos < n) throw new FrameDecodeError(`truncated fixed field at byte ${this.pos}`);
    this.pos += n;
  }
}

function expectWire(field: string, wt: number, want: number): void {
  if (wt !== want) throw new FrameDecodeError(`field ${field} has wire type ${wt}, expected ${want}`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Scratch for the unsigned fields of the chunk being decoded, in UINT_FIELDS order. */
const chunkFields = new Array<number>(UINT_FIELDS.length).fill(0);

function decodeChunk(r: Reader): DecodedChunk {
  const v = chunkFields.fill(0);
  let runId = '';
  let payload: Uint8Array = new Uint8Array(0);
  while (r.pos < r.end) {
    const tag = r.uint32();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 1) {
      expectWire('run_id', wt, 2);
      const [s, e] = r.bytes();
      try {
        runId = utf8.decode(r.buf.subarray(s, e));
      } catch (err) {
        throw new FrameDecodeError('field run_id is not valid UTF-8', { cause: err });
      }
    } else if (field >= 2 && field <= 14) {
      expectWire(UINT_FIELDS[field - 2], wt, 0);
      v[field - 2] = r.uint32();
    } else if (field === PAYLOAD_FIELD) {
      expectWire('payload', wt, 2);
      const [s, e] = r.bytes();
      payload = r.buf.subarray(s, e);
    } else if (field === PADDING_FIELD) {
      expectWire('alignment_padding', wt, 2);
      r.bytes();
    } else if (field === 0) {
      throw new FrameDecodeError('field number 0 is invalid');
    } else {
      r.skip(wt, field);
    }
  }
  // One object literal of a fixed shape (a frame per chunk: keyed stores and a spread here cost
  // hidden-class transitions on every frame).
  return {
    runId,
    generation: v[0],
    senderRank: v[1],
    sequence: v[2],
    epoch: v[3],
    step: v[4],
    phase: v[5],
    phaseStep: v[6],
    segment: v[7],
    chunkIndex: v[8],
    offset: v[9],
    length: v[10],
    totalLength: v[11],
    dtype: v[12],
    payload,
  };
}

function decodeWith<T>(decode: (b: Uint8Array) => T, what: string, bytes: Uint8Array): T {
  try {
    return decode(bytes);
  } catch (err) {
    throw new FrameDecodeError(`undecodable ${what}: ${(err as Error).message}`, { cause: err });
  }
}

/** Decodes a RingResponse; throws FrameDecodeError for anything that is not exactly one kind. */
export function decodeResponse(buf: Uint8Array): DecodedResponse {
  const r = new Reader(buf, 0, buf.length);
  let result: DecodedResponse | undefined;
  let kinds = 0;
  while (r.pos < r.end) {
    const tag = r.uint32();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field >= 1 && field <= 3) {
      expectWire(['accept', 'chunk', 'abort'][field - 1], wt, 2);
      const [s, e] = r.bytes();
      kinds++;
      if (field === 2) result = { kind: 'chunk', chunk: decodeChunk(new Reader(buf, s, e)) };
      else if (field === 1) {
        result = {
          kind: 'accept',
          accept: decodeWith(bbn.v1.RingAccept.decode, 'accept', buf.subarray(s, e)),
        };
      } else {
        result = { kind: 'abort', abort: decodeWith(bbn.v1.RingAbort.decode, 'abort', buf.subarray(s, e)) };
      }
    } else if (field === 0) {
      throw new FrameDecodeError('field number 0 is invalid');
    } else {
      r.skip(wt, field);
    }
  }
  if (!result) throw new FrameDecodeError(`response of ${buf.length} bytes sets no kind`);
  if (kinds > 1) throw new FrameDecodeError(`response sets ${kinds} kinds, expected exactly one`);
  return result;
}

/** A decoded RingRequest: exactly one of the two is set. */
export interface DecodedRequest {
  readonly hello: bbn.v1.RingHello | null;
  readonly abort: bbn.v1.RingAbort | null;
}

/** Decodes a RingRequest (hello or abort) with the generated code. */
export function decodeRequest(buf: Uint8Array): DecodedRequest {
  const req = decodeWith(bbn.v1.RingRequest.decode, 'request', buf);
  // The generated decoder builds sub-messages with their classes, so these casts hold.
  const hello = (req.hello ?? null) as bbn.v1.RingHello | null;
  const abort = (req.abort ?? null) as bbn.v1.RingAbort | null;
  if (!hello === !abort)
    throw new FrameDecodeError(`request of ${buf.length} bytes must set exactly one kind`);
  return { hello, abort };
}

/** Encodes a RingRequest with the generated code. */
export function encodeRequest(msg: bbn.v1.RingRequest.$Properties): Buffer {
  return toBuffer(bbn.v1.RingRequest.encode(msg).finish());
}

/** Encodes a control RingResponse (accept or abort) with the generated code. */
export function encodeResponse(msg: bbn.v1.RingResponse.$Properties): Buffer {
  return toBuffer(bbn.v1.RingResponse.encode(msg).finish());
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Reuses frame buffers: a frame's bytes are copied by grpc-js when it writes the message, so
 * once the write callback fired the buffer can carry the next frame. Saves most large
 * allocations (and the garbage collections they trigger) on the send path.
 */
export class FramePool {
  private readonly free: ArrayBuffer[] = [];

  /** @param capacity bytes of each pooled buffer (the largest frame). */
  constructor(private readonly capacity: number) {}

  /** A Buffer of exactly `bytes` bytes, pooled when it fits. */
  readonly alloc: FrameAllocator = (bytes) => {
    if (bytes > this.capacity) return Buffer.allocUnsafeSlow(bytes);
    const ab = this.free.pop() ?? new ArrayBuffer(this.capacity);
    return Buffer.from(ab, 0, bytes);
  };

  /** Returns a frame obtained from `alloc` (others are ignored). */
  release(frame: Buffer): void {
    if (frame.byteOffset === 0 && frame.buffer.byteLength === this.capacity && this.free.length < 32) {
      this.free.push(frame.buffer as ArrayBuffer);
    }
  }
}
