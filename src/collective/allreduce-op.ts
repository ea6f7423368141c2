/**
 * One allreduce on one rank: the chunk-level dataflow of the ring schedule (schedule.ts).
 *
 * Each received chunk is checked field by field against the schedule, reduced (or copied) into
 * the caller's array, and queued to be forwarded as the same chunk at the next ring step, so a
 * chunk moves on as soon as it is reduced and sending overlaps reducing. Sends are queued as
 * (step, chunk) positions and only turned into bytes when the downstream stream can take them,
 * so memory stays bounded by the HTTP/2 window and the stream's buffer.
 *
 * Why the frames on an edge are totally ordered by (t, chunk): a rank first queues all its
 * step-0 chunks, then forwards chunks in the order they arrive; by induction around the ring
 * every edge carries (t, chunk) in lexicographic order. The receiver therefore expects exactly
 * one next frame and anything else is a protocol error.
 */
import { bbn } from '../generated/bbn.js';
import { type AllreduceTag, describeRank, ProtocolError } from './api.ts';
import { roundToBf16InPlace, type Staging, WIRE_BYTES, type WireDtypeName } from './bf16.ts';
import type { PeerRef } from './edges.ts';
import type { FrameSite } from './faults.ts';
import { type ChunkHeader, type DecodedChunk, dtypeValue } from './frame-codec.ts';
import {
  type ChunkRange,
  chunkRange,
  chunksInSegment,
  isReduceStep,
  phaseStep,
  ReceiveCursor,
  ringSteps,
  sendSegment,
} from './schedule.ts';

/** Everything one allreduce needs from its ring. */
export interface OpContext {
  readonly runId: string;
  readonly generation: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly chunkElements: number;
  readonly dtype: WireDtypeName;
  readonly sequence: number;
  readonly tag: AllreduceTag;
  readonly data: Float32Array;
  readonly upstream: PeerRef;
  readonly staging: Staging;
  /** The downstream transport. */
  readonly sink: ChunkSink;
  /** Called once when every frame was received and every send handed to the stream. */
  readonly finished: () => void;
}

/** Where an allreduce's outgoing chunks go: the downstream edge of one transport. */
export interface ChunkSink {
  /**
   * Sends one chunk: `header` and the float32 `values` (a view of the caller's array), the first
   * `bf16` of them encoded as bfloat16 and the rest as float32. A transport may keep reading
   * `values` until `busy` turns false. Returns false when the caller must wait for
   * `AllreduceOp.drained()` before sending more, or 'stall' when a test's fault injector stopped
   * sending for good.
   */
  send(header: ChunkHeader, values: Float32Array, bf16: number, site: FrameSite): boolean | 'stall';
  /** Whether bytes handed over may still be read from a caller's array (zero-copy sends). */
  readonly busy: boolean;
}

const PHASE_RS = bbn.v1.RingPhase.RING_PHASE_REDUCE_SCATTER;
const PHASE_AG = bbn.v1.RingPhase.RING_PHASE_ALL_GATHER;

/** State of one allreduce on this rank. */
export class AllreduceOp {
  /** Settles when the allreduce finished on this rank or failed. */
  readonly promise: Promise<void>;
  private resolve!: () => void;
  private reject!: (err: Error) => void;
  private readonly ctx: OpContext;
  private readonly n: number;
  private readonly cursor: ReceiveCursor;
  /** Pending sends: ring step and chunk index, consumed from `head`. */
  private readonly queueT: number[] = [];
  private readonly queueC: number[] = [];
  private head = 0;
  /** True while the downstream stream asked us to wait for 'drain'. */
  private blocked = false;
  /** True once a fault injector stalled the sends (tests only). */
  private stalled = false;
  private framesSent = 0;
  private settled = false;

  constructor(ctx: OpContext) {
    this.ctx = ctx;
    this.n = ctx.data.length;
    this.cursor = new ReceiveCursor(this.n, ctx.worldSize, ctx.rank, ctx.chunkElements, ctx.tag.span);
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  /** Allreduce sequence number. */
  get sequence(): number {
    return this.ctx.sequence;
  }

  /** Whether every expected frame has arrived. */
  get receiveDone(): boolean {
    return this.cursor.done;
  }

  /** Whether frames remain to be handed to the downstream stream. */
  get sendPending(): boolean {
    return this.head < this.queueT.length;
  }

  /** Position this rank waits for, for timeout messages. */
  describeWait(): string {
    return describeWait(this.cursor);
  }

  /** Queues this rank's own segment (ring step 0) and starts sending. */
  start(): void {
    const seg = sendSegment(this.ctx.rank, 0, this.ctx.worldSize);
    const chunks = chunksInSegment(
      this.n,
      this.ctx.worldSize,
      seg,
      this.ctx.chunkElements,
      this.ctx.tag.span,
    );
    for (let c = 0; c < chunks; c++) this.enqueue(0, c);
    this.pump();
  }

  /** The downstream stream can take more frames. */
  drained(): void {
    this.blocked = false;
    this.pump();
  }

  /** A zero-copy sink finished reading the caller's array; the allreduce may now settle. */
  flushed(): void {
    this.pump();
  }

  /** Fails the allreduce on this rank (idempotent). */
  fail(err: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(err);
  }

  /** Checks and applies one received chunk, then forwards it. Throws ProtocolError. */
  onFrame(f: DecodedChunk): void {
    const ctx = this.ctx;
    if (this.cursor.done) mismatch(ctx, this.cursor, f, 'frame', 'one more frame', 'no further frame');
    const { t, chunk } = this.cursor.next;
    const range = this.cursor.range;
    const reduce = isReduceStep(t, ctx.worldSize);
    const k = bf16Count(ctx.dtype, ctx.tag, range);
    checkChunk(ctx, this.n, this.cursor, f, k);
    const split = k * WIRE_BYTES.bf16;

    // The payload is k bf16 values, then the rest of the chunk as float32.
    const dst = ctx.data.subarray(range.offset, range.offset + range.length);
    const low = dst.subarray(0, k);
    const exact = dst.subarray(k);
    if (reduce) {
      if (k > 0) ctx.staging.addInto(low, f.payload.subarray(0, split), 'bf16');
      if (k < dst.length) ctx.staging.addInto(exact, f.payload.subarray(split), 'f32');
      // The owner rounds its final sum to the wire precision, so every rank ends bit-identical.
      if (t === ctx.worldSize - 2 && k > 0) roundToBf16InPlace(low);
    } else {
      if (k > 0) ctx.staging.copyInto(low, f.payload.subarray(0, split), 'bf16');
      if (k < dst.length) ctx.staging.copyInto(exact, f.payload.subarray(split), 'f32');
    }
    this.cursor.advance();
    if (t + 1 < ringSteps(ctx.worldSize)) this.enqueue(t + 1, chunk);
    this.pump();
  }

  private enqueue(t: number, c: number): void {
    if (this.head === this.queueT.length) {
      this.queueT.length = 0;
      this.queueC.length = 0;
      this.head = 0;
    }
    this.queueT.push(t);
    this.queueC.push(c);
  }

  /** Hands queued frames to the sink until it pushes back; finishes when all is done. */
  private pump(): void {
    const ctx = this.ctx;
    while (!this.blocked && !this.stalled && !this.settled && this.head < this.queueT.length) {
      const t = this.queueT[this.head];
      const c = this.queueC[this.head];
      this.head++;
      const sent = this.sendChunk(t, c);
      if (sent === 'stall') {
        this.stalled = true;
        return;
      }
      this.framesSent++;
      if (!sent) this.blocked = true;
    }
    if (
      !this.settled &&
      this.cursor.done &&
      this.head === this.queueT.length &&
      !this.stalled &&
      !ctx.sink.busy
    ) {
      this.settled = true;
      ctx.finished();
      this.resolve();
    }
  }

  /** Sends chunk c of the segment sent at ring step t, reading the array now. */
  private sendChunk(t: number, c: number): boolean | 'stall' {
    const ctx = this.ctx;
    const segment = sendSegment(ctx.rank, t, ctx.worldSize);
    const range = chunkRange(this.n, ctx.worldSize, segment, c, ctx.chunkElements, ctx.tag.span);
    const k = bf16Count(ctx.dtype, ctx.tag, range);
    const header: ChunkHeader = {
      runId: ctx.runId,
      generation: ctx.generation,
      senderRank: ctx.rank,
      sequence: ctx.sequence,
      epoch: ctx.tag.epoch,
      step: ctx.tag.step,
      phase: isReduceStep(t, ctx.worldSize) ? PHASE_RS : PHASE_AG,
      phaseStep: phaseStep(t, ctx.worldSize),
      segment,
      chunkIndex: c,
      offset: range.offset,
      length: range.length,
      totalLength: this.n,
      dtype: dtypeValue(k > 0 ? 'bf16' : 'f32'),
    };
    const values = ctx.data.subarray(range.offset, range.offset + range.length);
    return ctx.sink.send(header, values, k, { sequence: ctx.sequence, frameIndex: this.framesSent, t });
  }
}

/**
 * How many leading elements of the chunk `range` travel as bf16: those inside the caller's bf16
 * prefix (`tag.bf16Elements`, the gradients) when the ring compresses (`dtype` 'bf16'); the rest
 * (loss sums, counts, BatchNorm buffers) rides float32. A chunk with any bf16 element is marked
 * WIRE_DTYPE_BF16 and carries those first, then the float32 rest. (The native plane computes the
 * same in native/ring-plane/ring_plane.c bf16_count.)
 */
export function bf16Count(dtype: WireDtypeName, tag: AllreduceTag, range: ChunkRange): number {
  if (dtype !== 'bf16') return 0;
  return Math.max(0, Math.min(range.length, (tag.bf16Elements ?? 0) - range.offset));
}

/** What checking a chunk against the schedule needs from its allreduce. */
type CheckContext = Pick<
  OpContext,
  'runId' | 'generation' | 'rank' | 'worldSize' | 'sequence' | 'tag' | 'upstream'
>;

/**
 * Checks a received chunk field by field against the position `cursor` expects next (`k` of its
 * elements as bf16); throws the ProtocolError naming the first field that differs. Also used by
 * the native plane (native-plane.ts) to name a chunk it refused.
 */
export function checkChunk(
  ctx: CheckContext,
  n: number,
  cursor: ReceiveCursor,
  f: DecodedChunk,
  k: number,
): void {
  const { t, chunk } = cursor.next;
  const range = cursor.range;
  const expect = (field: string, got: number | string, want: number | string): void => {
    if (got !== want) mismatch(ctx, cursor, f, field, got, want);
  };
  expect('run_id', f.runId, ctx.runId);
  expect('generation', f.generation, ctx.generation);
  expect('sender_rank', f.senderRank, ctx.upstream.rank);
  expect('sequence', f.sequence, ctx.sequence);
  expect('epoch', f.epoch, ctx.tag.epoch);
  expect('step', f.step, ctx.tag.step);
  expect('dtype', f.dtype, dtypeValue(k > 0 ? 'bf16' : 'f32'));
  expect('total_length', f.totalLength, n);
  expect('phase', f.phase, isReduceStep(t, ctx.worldSize) ? PHASE_RS : PHASE_AG);
  expect('phase_step', f.phaseStep, phaseStep(t, ctx.worldSize));
  expect('segment', f.segment, cursor.segment);
  expect('chunk_index', f.chunkIndex, chunk);
  expect('offset', f.offset, range.offset);
  expect('length', f.length, range.length);
  expect('payload bytes', f.payload.length, k * WIRE_BYTES.bf16 + (range.length - k) * WIRE_BYTES.f32);
}

/** The position a receiver waits for, for messages. */
export function describeWait(cursor: ReceiveCursor): string {
  const { t, chunk } = cursor.next;
  return `frame ${cursor.received} (ring step ${t}, chunk ${chunk})`;
}

function mismatch(
  ctx: CheckContext,
  cursor: ReceiveCursor,
  f: DecodedChunk,
  field: string,
  got: unknown,
  want: unknown,
): never {
  const up = describeRank(ctx.upstream.rank, ctx.upstream.address);
  throw new ProtocolError(
    `rank ${ctx.rank}: allreduce #${ctx.sequence} (epoch ${ctx.tag.epoch}, step ${ctx.tag.step}): ` +
      `${describeWait(cursor)} from ${up} has ${field} ${JSON.stringify(got)}, expected ${JSON.stringify(want)} ` +
      `(frame says epoch ${f.epoch}, step ${f.step}, sequence ${f.sequence})`,
    ctx.upstream.rank,
    ctx.upstream.address,
  );
}
