/**
 * The ring allreduce schedule, as pure arithmetic (no I/O): which segment and chunk each rank
 * sends and receives at each ring step. Both ends of an edge compute it independently, so a
 * receiver can check every field of every frame (see proto/bbn/v1/collective.proto).
 *
 * An array of n elements is cut into W segments, segment s = [floor(s*n/W), floor((s+1)*n/W)).
 * At ring step t (0 <= t < 2(W-1)) rank r sends segment (r - t) mod W and receives segment
 * (r - 1 - t) mod W. Steps t < W-1 reduce (reduce-scatter), later ones copy (all-gather).
 * Segment s is therefore summed in rank order s, s+1, ..., s+W-1 (mod W) no matter how it is
 * chunked, which makes sums bit-identical for every chunk size.
 *
 * A call may reduce a piece of a larger logical array (`Span`: gradients reduced by segment while
 * the backward pass goes on). Its segments are then the logical array's segments clipped to the
 * piece, so every element is summed in the same rank order as in one allreduce of the whole
 * array, and the pieces together give the whole array's bits at any W. (A piece inside one
 * segment travels as a chain, chunk by chunk: summed along W-1 edges, copied back along W-1; its
 * busiest edges carry W/(W-1) times the bytes a ring-shaped piece puts on each.)
 */

import type { Span } from './api.ts';

/** A contiguous element range of the flat array. */
export interface ChunkRange {
  /** First element. */
  readonly offset: number;
  /** Number of elements (>= 1 for a real chunk). */
  readonly length: number;
}

/** Non-negative remainder. */
export function mod(a: number, m: number): number {
  return ((a % m) + m) % m;
}

/** Number of ring steps of one allreduce, 2(W-1). */
export function ringSteps(worldSize: number): number {
  return 2 * (worldSize - 1);
}

/**
 * First element of segment `s` (s may equal W, giving n) of an array of n elements, or of the
 * piece of n elements at `span` (the logical array's segment start, clipped to the piece).
 */
export function segmentStart(n: number, worldSize: number, s: number, span?: Span): number {
  // n < 2^32 and s <= W < 2^16 in practice: the product is exact in a double.
  if (!span) return Math.floor((s * n) / worldSize);
  const start = Math.floor((s * span.total) / worldSize) - span.offset;
  return Math.min(n, Math.max(0, start));
}

/** Number of chunks segment `s` is cut into. */
export function chunksInSegment(
  n: number,
  worldSize: number,
  s: number,
  chunkElements: number,
  span?: Span,
): number {
  const len = segmentStart(n, worldSize, s + 1, span) - segmentStart(n, worldSize, s, span);
  return Math.ceil(len / chunkElements);
}

/** Element range of chunk `c` of segment `s`. */
export function chunkRange(
  n: number,
  worldSize: number,
  s: number,
  c: number,
  chunkElements: number,
  span?: Span,
): ChunkRange {
  const start = segmentStart(n, worldSize, s, span);
  const end = segmentStart(n, worldSize, s + 1, span);
  const offset = start + c * chunkElements;
  return { offset, length: Math.min(chunkElements, end - offset) };
}

/** Segment rank `rank` sends at ring step `t`. */
export function sendSegment(rank: number, t: number, worldSize: number): number {
  return mod(rank - t, worldSize);
}

/** Segment rank `rank` receives (from rank-1) at ring step `t`. */
export function recvSegment(rank: number, t: number, worldSize: number): number {
  return mod(rank - 1 - t, worldSize);
}

/** True when ring step `t` reduces (reduce-scatter) rather than copies (all-gather). */
export function isReduceStep(t: number, worldSize: number): boolean {
  return t < worldSize - 1;
}

/** Step within its phase (0..W-2) of ring step `t`. */
export function phaseStep(t: number, worldSize: number): number {
  return isReduceStep(t, worldSize) ? t : t - (worldSize - 1);
}

/** A (ring step, chunk index) position in a rank's receive sequence. */
export interface FramePosition {
  /** Ring step 0..2W-3. */
  readonly t: number;
  /** Chunk index within the received segment. */
  readonly chunk: number;
}

/**
 * The exact sequence of frames one rank receives in one allreduce, ordered by (t, chunk):
 * the order its upstream neighbour sends them in (see `RingAllreduce` for why it is total).
 */
export class ReceiveCursor {
  private readonly n: number;
  private readonly worldSize: number;
  private readonly rank: number;
  private readonly chunkElements: number;
  private readonly span: Span | undefined;
  /** Next expected position; t === ringSteps(W) once every frame has arrived. */
  private t = 0;
  private chunk = 0;
  /** Frames accepted so far. */
  private count = 0;

  constructor(n: number, worldSize: number, rank: number, chunkElements: number, span?: Span) {
    this.n = n;
    this.worldSize = worldSize;
    this.rank = rank;
    this.chunkElements = chunkElements;
    this.span = span;
    this.skipEmpty();
  }

  /** Whether every expected frame has arrived. */
  get done(): boolean {
    return this.t >= ringSteps(this.worldSize);
  }

  /** Number of frames accepted so far. */
  get received(): number {
    return this.count;
  }

  /** The next expected position (meaningless once `done`). */
  get next(): FramePosition {
    return { t: this.t, chunk: this.chunk };
  }

  /** Segment expected next. */
  get segment(): number {
    return recvSegment(this.rank, this.t, this.worldSize);
  }

  /** Element range expected next. */
  get range(): ChunkRange {
    return chunkRange(this.n, this.worldSize, this.segment, this.chunk, this.chunkElements, this.span);
  }

  /** Moves past the current position. */
  advance(): void {
    this.count++;
    this.chunk++;
    if (this.chunk >= chunksInSegment(this.n, this.worldSize, this.segment, this.chunkElements, this.span)) {
      this.t++;
      this.chunk = 0;
      this.skipEmpty();
    }
  }

  /** Skips steps whose segment is empty (n < W, or a piece outside that segment). */
  private skipEmpty(): void {
    const steps = ringSteps(this.worldSize);
    while (
      this.t < steps &&
      chunksInSegment(this.n, this.worldSize, this.segment, this.chunkElements, this.span) === 0
    ) {
      this.t++;
    }
  }
}

/** Total frames one rank receives (and sends) in one allreduce of n elements (at `span`). */
export function framesPerAllreduce(
  n: number,
  worldSize: number,
  rank: number,
  chunkElements: number,
  span?: Span,
): number {
  let total = 0;
  for (let t = 0; t < ringSteps(worldSize); t++) {
    total += chunksInSegment(n, worldSize, recvSegment(rank, t, worldSize), chunkElements, span);
  }
  return total;
}
