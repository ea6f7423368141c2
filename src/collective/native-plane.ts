/**
 * The native data plane of a tcp ring (`dataPlane: 'auto' | 'native'`): the chunk traffic of each
 * allreduce runs in C (native/ring-plane, built by scripts/setup-native.sh) on a thread of its
 * own, over the ring's own two data connections, which ring-connect.ts made and this plane
 * borrows (TcpEdge.lend). The JavaScript thread does nothing per byte, which brings the ring's CPU
 * per byte to torch gloo's (docs/performance.md); the wire, the schedule and the sums are those of
 * the JavaScript plane, bit for bit, so the two interoperate. That holds for bf16 on the wire
 * (compress 'bf16') too: each call's `tag.bf16Elements` prefix travels as bfloat16, encoded,
 * decoded and rounded as bf16.ts does it (native/ring-plane/bf16.c).
 *
 * The ring (ring-allreduce.ts) keeps everything else: set-up, the gRPC calls (control, aborts,
 * keepalive), the state machine and close. The plane holds the data connections from attach until
 * `release()`, which the ring calls on any failure and on close: it cancels an allreduce in
 * flight, waits for the plane's thread to stop touching the sockets and the caller's array, and
 * gives the connections back (destroying one the plane left inside a message), so the ring's usual
 * aborts and orderly close go out on them.
 *
 * Why hand-written: no library runs a ring schedule over sockets a Node process already owns;
 * gloo and NCCL bring their own rendezvous and sockets, and the JavaScript plane is the one this
 * replaces.
 */
import { createRequire } from 'node:module';
import { bf16Count, checkChunk, describeWait } from './allreduce-op.ts';
import {
  type AllreduceTag,
  CollectiveError,
  describeRank,
  PeerLostError,
  ProtocolError,
  RingTimeoutError,
  type Span,
} from './api.ts';
import type { WireDtypeName } from './bf16.ts';
import type { PeerRef } from './edges.ts';
import type { DecodedChunk } from './frame-codec.ts';
import { fromDownstream, fromUpstream } from './inbound.ts';
import type { RingConfig } from './options.ts';
import { ReceiveCursor } from './schedule.ts';
import type { TcpDataIn, TcpDataOut } from './tcp-edges.ts';

/** Where scripts/setup-native.sh writes the addon (the same path from src/ and dist/). */
const ADDON_PATH = '../../native/ring-plane/build/ring_plane.node';
/** Longest run id the plane puts on chunks (native/ring-plane/plane.h RUN_ID_MAX). */
export const NATIVE_RUN_ID_MAX_BYTES = 64;

/** Frames and bytes one allreduce moved. */
export interface PlaneCounts {
  readonly framesSent: number;
  readonly bytesSent: number;
  readonly framesReceived: number;
  readonly bytesReceived: number;
}

/** What a native allreduce rejects with (native/ring-plane/ring_plane.c js_allreduce). */
export interface PlaneError extends Error {
  code: 'cancelled' | 'timeout' | 'frame' | 'closed' | 'lost' | 'protocol' | 'error';
  side: 'upstream' | 'downstream' | 'local';
  peerRank: number;
  /** The send connection was left inside a message: it can carry nothing more. */
  sendBroken: boolean;
  /** The receive connection was left inside a message. */
  recvBroken: boolean;
  /** code 'frame': the neighbour's message, for inbound.ts to name. */
  frame?: Buffer;
  /** Frames received whole before the failure: the position the plane waited at. */
  received: number;
}

/** The addon's functions (ring_plane.c; wire_napi.c adds the wire's test entry points). */
export interface RingPlaneAddon {
  create(
    rank: number,
    worldSize: number,
    runId: string,
    generation: number,
    timeoutMs: number,
    upName: string,
    downName: string,
  ): unknown;
  adopt(plane: unknown, recvFd: number, sendFd: number): void;
  allreduce(
    plane: unknown,
    data: Float32Array,
    chunkBytes: number,
    epoch: number,
    step: number,
    sequence: number,
    spanOffset?: number,
    spanTotal?: number,
    bf16Elements?: number,
  ): Promise<PlaneCounts>;
  cancel(plane: unknown): boolean;
  close(plane: unknown): void;
}

let loaded: { addon: RingPlaneAddon } | { missing: string } | undefined;

/**
 * The addon, or why there is none. `BBN_RING_PLANE_ADDON` names another build (the sanitizer
 * build of bench/peers/native/wire-check-asan.sh).
 */
export function ringPlaneAddon(): RingPlaneAddon | string {
  if (!loaded) {
    const path = process.env.BBN_RING_PLANE_ADDON || ADDON_PATH;
    try {
      loaded = { addon: createRequire(import.meta.url)(path) as RingPlaneAddon };
    } catch (err) {
      loaded = {
        missing: `the native data plane is not built (${path}: ${(err as Error).message.split('\n')[0]}); run scripts/setup-native.sh`,
      };
    }
  }
  return 'addon' in loaded ? loaded.addon : loaded.missing;
}

/**
 * The addon for a ring of these settings, or why it runs on the JavaScript plane. `injected`: a
 * fault injector is present (its hooks live in the JavaScript plane).
 */
export function nativePlaneFor(cfg: RingConfig, injected: boolean): RingPlaneAddon | string {
  if (cfg.dataPlane === 'js') return "dataPlane is 'js'";
  if (cfg.transport !== 'tcp') return `transport is '${cfg.transport}' (the native plane needs 'tcp')`;
  if (Buffer.byteLength(cfg.runId) > NATIVE_RUN_ID_MAX_BYTES) {
    return `the run id is longer than ${NATIVE_RUN_ID_MAX_BYTES} bytes`;
  }
  if (injected) return 'a fault injector is attached (its hooks are in the JavaScript plane)';
  return ringPlaneAddon();
}

/** How a release left the connections. */
interface Released {
  readonly sendBroken: boolean;
  readonly recvBroken: boolean;
}

/** One rank's native plane over its ring's two data connections; see the module comment. */
export class NativePlane {
  private inFlight: Promise<Released> | null = null;
  private released: Promise<void> | null = null;

  private constructor(
    private readonly addon: RingPlaneAddon,
    private readonly plane: unknown,
    private readonly dataIn: TcpDataIn,
    private readonly dataOut: TcpDataOut,
    /** The ring sends `tag.bf16Elements` as bfloat16 (compress 'bf16'). */
    private readonly compress: boolean,
  ) {}

  /**
   * Borrows both data connections, or returns null (and borrows nothing) when JavaScript already
   * holds bytes of either (TcpEdge.lend) or the plane cannot be made: the ring then keeps its
   * JavaScript plane.
   */
  static borrow(
    addon: RingPlaneAddon,
    ring: {
      rank: number;
      worldSize: number;
      runId: string;
      generation: number;
      timeoutMs: number;
      dtype: WireDtypeName;
    },
    dataIn: TcpDataIn,
    dataOut: TcpDataOut,
  ): NativePlane | null {
    const recvFd = dataIn.lend();
    const sendFd = recvFd === null ? null : dataOut.lend();
    if (recvFd === null || sendFd === null) {
      if (recvFd !== null) dataIn.reclaim();
      return null;
    }
    try {
      const plane = addon.create(
        ring.rank,
        ring.worldSize,
        ring.runId,
        ring.generation,
        Math.min(Math.max(1, Math.ceil(ring.timeoutMs)), 0x7fffffff),
        describeRank(dataIn.peer.rank, dataIn.peer.address),
        describeRank(dataOut.peer.rank, dataOut.peer.address),
      );
      addon.adopt(plane, recvFd, sendFd);
      return new NativePlane(addon, plane, dataIn, dataOut, ring.dtype === 'bf16');
    } catch {
      // The plane could not be made (no eventfd left): the connections stay JavaScript's.
      dataIn.reclaim();
      dataOut.reclaim();
      return null;
    }
  }

  /**
   * Sums `data` across the ring (allreduce number `sequence`); rejects with a PlaneError. One at a
   * time, and never after `release()`. On a ring with compress 'bf16' the first
   * `tag.bf16Elements` elements travel as bfloat16 (allreduce-op.ts bf16Count; 0 without compress).
   */
  allreduce(
    data: Float32Array,
    chunkBytes: number,
    tag: { epoch: number; step: number; span?: Span; bf16Elements?: number },
    sequence: number,
  ): Promise<PlaneCounts> {
    if (this.released) throw new Error('native plane: allreduce after release');
    const span = tag.span;
    const run = this.addon.allreduce(
      this.plane,
      data,
      chunkBytes,
      tag.epoch,
      tag.step,
      sequence,
      span?.offset ?? 0,
      span?.total ?? 0,
      this.compress ? (tag.bf16Elements ?? 0) : 0,
    );
    const done = run.then(
      () => ({ sendBroken: false, recvBroken: false }),
      (err: PlaneError) => ({ sendBroken: err.sendBroken, recvBroken: err.recvBroken }),
    );
    this.inFlight = done;
    void done.then(() => {
      if (this.inFlight === done) this.inFlight = null;
    });
    return run;
  }

  /**
   * Stops the allreduce in flight (it rejects with code 'cancelled' once its thread finished the
   * frame it was sending, at most a second), then gives both connections back to their edges:
   * a send stream left inside a message is destroyed (its peer sees a loss, never a torn frame);
   * a receive stream left inside one is not read again; the rest is read by JavaScript again.
   * Idempotent; resolves when done.
   */
  release(): Promise<void> {
    this.released ??= (async () => {
      const running = this.inFlight;
      if (running) this.addon.cancel(this.plane);
      const how = (await running) ?? { sendBroken: false, recvBroken: false };
      this.addon.close(this.plane);
      // A receive stream left inside a message is never read again (as TcpDataIn does with a
      // framing error), but its other direction still carries this rank's abort upstream.
      if (!how.recvBroken) this.dataIn.reclaim();
      if (how.sendBroken) this.dataOut.destroy();
      else this.dataOut.reclaim();
    })();
    return this.released;
  }
}

/**
 * The ring's error for a native allreduce's rejection (what the JavaScript plane would have
 * raised for the same event): the neighbour's message decoded as `inbound.ts` decodes it, a loss
 * as PeerLostError, no progress as RingTimeoutError. 'cancelled' has no error of its own: the
 * ring cancels only after it failed for another reason.
 */
export function planeFailure(err: PlaneError, at: FailedAt): CollectiveError {
  const { self, up, down } = at;
  const peer = err.side === 'downstream' ? down : up;
  switch (err.code) {
    case 'frame': {
      if (err.side === 'downstream') return fromDownstream(err.frame!, self, down);
      const got = fromUpstream(err.frame!, self, up);
      if (got.failure) return got.failure;
      return refusedChunk(at, got.chunk, err.received);
    }
    case 'closed':
    case 'lost':
      return new PeerLostError(err.message, peer.rank, peer.address);
    case 'timeout':
      return new RingTimeoutError(err.message, [peer.rank]);
    case 'protocol':
      return new ProtocolError(err.message, peer.rank, peer.address);
    default:
      return new CollectiveError(`rank ${self}: native data plane: ${err.message}`);
  }
}

/** Where a native allreduce failed: the ring, the allreduce and its array. */
export interface FailedAt {
  readonly self: number;
  readonly worldSize: number;
  readonly runId: string;
  readonly generation: number;
  readonly chunkElements: number;
  readonly dtype: WireDtypeName;
  readonly up: PeerRef;
  readonly down: PeerRef;
  readonly sequence: number;
  readonly tag: AllreduceTag;
  readonly length: number;
}

/**
 * Names a chunk the plane refused as the JavaScript plane would (allreduce-op.ts checkChunk): the
 * schedule's position after `received` frames, and the first field that differs.
 */
function refusedChunk(at: FailedAt, chunk: DecodedChunk, received: number): CollectiveError {
  const cursor = new ReceiveCursor(at.length, at.worldSize, at.self, at.chunkElements, at.tag.span);
  for (let i = 0; i < received && !cursor.done; i++) cursor.advance();
  const ctx = { ...at, rank: at.self, upstream: at.up };
  try {
    if (cursor.done)
      throw new ProtocolError(
        `rank ${at.self}: ${describeRank(at.up.rank, at.up.address)} sent a frame after the last one of allreduce #${at.sequence}`,
        at.up.rank,
        at.up.address,
      );
    checkChunk(ctx, at.length, cursor, chunk, bf16Count(at.dtype, at.tag, cursor.range));
  } catch (err) {
    return err as CollectiveError;
  }
  // Only a chunk that differs from the expected one in its payload bytes alone gets here.
  return new ProtocolError(
    `rank ${at.self}: ${describeRank(at.up.rank, at.up.address)} sent a frame the native plane refused at ${describeWait(cursor)} of allreduce #${at.sequence}`,
    at.up.rank,
    at.up.address,
  );
}
