/**
 * Ring allreduce over gRPC: one long-lived call per ring edge, opened at creation (each rank
 * calls its upstream neighbour and receives data on the response stream, see
 * proto/bbn/v1/collective.proto), reused for every allreduce of the generation. With
 * `transport: 'tcp'` the chunk data of each edge travels on a plain TCP connection opened beside
 * the call during set-up (tcp-edges.ts); the call keeps the control (aborts, keepalive). On those
 * connections the chunks are moved either by the native data plane (native-plane.ts: C on a
 * thread of its own; the default where it is built) or by this module's JavaScript plane
 * (AllreduceOp on the event loop); the wire and the sums are the same.
 *
 * Lifecycle: connecting → ready → (aborted | closed). `create` resolves in `ready`. Any failure
 * (a protocol violation, a lost or frozen neighbour, a progress timeout, `abort()`) moves the
 * ring to `aborted` for good: the in-flight allreduce rejects, an abort frame goes to both
 * neighbours (who abort and forward it, so every rank stops within a few hops), and every later
 * call rejects at once. The application then builds a new ring, normally for a new generation.
 * `close()` moves any state to `closed`.
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { bbn } from '../generated/bbn.js';
import { abortedEarlier, abortFrame, asCollective, originOf } from './abort.ts';
import { AllreduceOp, type ChunkSink } from './allreduce-op.ts';
import {
  type Allreducer,
  type AllreduceTag,
  CollectiveConfigError,
  CollectiveError,
  type DataPlaneChoice,
  describeRank,
  PeerLostError,
  ProtocolError,
  RingAbortedError,
  type RingAllreduceOptions,
  type RingStats,
  RingTimeoutError,
} from './api.ts';
import { Staging } from './bf16.ts';
import { closeInOrder, type DownstreamEdge, type PeerRef, type UpstreamEdge } from './edges.ts';
import { type FaultInjector, holdIfAsked, kFaultInjector } from './faults.ts';
import type { DecodedChunk } from './frame-codec.ts';
import { GrpcChunkSink } from './grpc-sink.ts';
import { fromDownstream, fromUpstream } from './inbound.ts';
import {
  NativePlane,
  nativePlaneFor,
  type PlaneError,
  planeFailure,
  type RingPlaneAddon,
} from './native-plane.ts';
import { checkAllreduceArgs, FRAME_HEADER_ALLOWANCE, type RingConfig, resolveOptions } from './options.ts';
import type { CollectiveServer } from './peer-server.ts';
import { ProgressWatch } from './progress.ts';
import { connectRing, type RingEdges } from './ring-connect.ts';
import { type TcpDataIn, TcpDataOut } from './tcp-edges.ts';

const PHASE_AG = bbn.v1.RingPhase.RING_PHASE_ALL_GATHER;

/** A sink with nothing in flight (the gRPC sink copies every frame). */
const IDLE = { afterWrites: (_graceMs: number, then: () => void) => then() };

/** Ring states; transitions only move right: connecting → ready → aborted → closed. */
type RingState = 'connecting' | 'ready' | 'aborted' | 'closed';

/** How long `close()` waits for neighbours to see our orderly end before cutting the calls. */
const CLOSE_GRACE_MS = 1_000;

/** A ring allreduce member; see the module comment. */
export class RingAllreduce implements Allreducer {
  readonly rank: number;
  readonly worldSize: number;
  private readonly cfg: RingConfig;
  private readonly faults: FaultInjector | undefined;
  private state: RingState = 'connecting';
  private upstream: UpstreamEdge | null = null;
  private downstream: DownstreamEdge | null = null;
  /** transport 'tcp': the data connections beside the calls. */
  private dataIn: TcpDataIn | null = null;
  private dataOut: TcpDataOut | null = null;
  /** Where chunks go: the data connection or the downstream call. */
  private sink: ChunkSink | null = null;
  /** The native data plane, when it moves this ring's chunks (it then holds the data connections). */
  private native: NativePlane | null = null;
  /** The data connections' listeners, attached once the native plane gives the connections back. */
  private attachData: (() => void) | null = null;
  /** Resolves once the native plane gave the data connections back (started by a failure or close). */
  private nativeReleased: Promise<void> | null = null;
  /** Sequence number of the native allreduce in flight, if any. */
  private nativeRunning: number | null = null;
  /** The allreduce in flight on this rank, if any (one at a time). */
  private op: AllreduceOp | null = null;
  /** Allreduce calls started = sequence number of the next one. */
  private started = 0;
  /** First chunk of the next allreduce, received before this rank started it (upstream paused). */
  private held: DecodedChunk | null = null;
  /** The failure that aborted the ring. */
  private failure: CollectiveError | null = null;
  /** A neighbour closed in order while nothing needed it; the next allreduce fails with this. */
  private peerClosed: PeerLostError | null = null;
  private readonly staging = new Staging();
  private unregister: (() => void) | null = null;
  private ownedServer: CollectiveServer | null = null;
  private readonly progress: ProgressWatch;
  private closing: Promise<void> | null = null;
  private counters = { allreduces: 0, bytesSent: 0, bytesReceived: 0, framesSent: 0, framesReceived: 0 };
  private seconds = 0;
  private lastSeconds = 0;

  private constructor(cfg: RingConfig, faults: FaultInjector | undefined) {
    this.cfg = cfg;
    this.rank = cfg.rank;
    this.worldSize = cfg.worldSize;
    this.faults = faults;
    this.progress = new ProgressWatch(cfg.timeoutMs);
  }

  /**
   * Joins the ring: serves the downstream neighbour's call and calls the upstream neighbour,
   * retrying with backoff while it starts, for at most `connectTimeoutMs`. On timeout the error
   * names the neighbours that never connected.
   */
  static async create(
    opts: RingAllreduceOptions & { [kFaultInjector]?: FaultInjector },
  ): Promise<RingAllreduce> {
    const cfg = resolveOptions(opts);
    if (os.endianness() !== 'LE')
      throw new CollectiveConfigError('ring allreduce needs a little-endian host');
    const addon = nativePlaneFor(cfg, opts[kFaultInjector] !== undefined);
    if (cfg.dataPlane === 'native' && typeof addon === 'string') {
      throw new CollectiveConfigError(`RingAllreduceOptions.dataPlane is 'native' but ${addon}`);
    }
    const ring = new RingAllreduce(cfg, opts[kFaultInjector]);
    if (cfg.worldSize === 1) {
      ring.state = 'ready';
      return ring;
    }
    ring.attach(
      typeof addon === 'string' ? null : addon,
      await connectRing(
        cfg,
        opts,
        (socket, peer, maxMessage) =>
          new TcpDataOut(socket, peer, {
            maxMessage,
            staging: ring.staging,
            sent: ring.sent,
            faults: ring.faults,
          }),
      ),
    );
    return ring;
  }

  private get self(): PeerRef {
    return { rank: this.rank, address: this.cfg.peers[this.rank] };
  }

  private readonly sent = (bytes: number): void => {
    this.counters.bytesSent += bytes;
    this.counters.framesSent++;
    this.touch();
  };

  /** Who moves this ring's chunks (after `create`). */
  get dataPlane(): Exclude<DataPlaneChoice, 'auto'> {
    return this.native ? 'native' : 'js';
  }

  /**
   * Takes over the connected edges and starts listening to them; with `addon`, the native plane
   * borrows the data connections (their listeners wait until it gives them back).
   */
  private attach(addon: RingPlaneAddon | null, edges: RingEdges): void {
    this.upstream = edges.upstream;
    this.downstream = edges.downstream;
    this.dataIn = edges.dataIn;
    this.dataOut = edges.dataOut;
    this.unregister = edges.unregister;
    this.ownedServer = edges.ownedServer;
    this.state = 'ready';
    this.sink =
      edges.dataOut ??
      new GrpcChunkSink(
        edges.downstream,
        this.cfg.chunkElements * 4 + FRAME_HEADER_ALLOWANCE,
        this.staging,
        this.sent,
        this.faults,
      );
    const fromUpstream = {
      message: (buf: Buffer) => this.onUpstreamMessage(buf),
      ended: (graceful: boolean, detail: string, oversize: boolean) =>
        this.onEdgeEnded('upstream', graceful, detail, oversize),
    };
    const toDownstream = {
      message: (buf: Buffer) => this.onDownstreamMessage(buf),
      ended: (graceful: boolean, detail: string, oversize: boolean) =>
        this.onEdgeEnded('downstream', graceful, detail, oversize),
      drain: () => {
        this.touch();
        this.op?.drained();
      },
      flushed: () => this.op?.flushed(),
    };
    edges.upstream.attach(fromUpstream);
    edges.downstream.attach(toDownstream);
    const { dataIn, dataOut } = edges;
    if (addon && dataIn && dataOut) this.native = NativePlane.borrow(addon, this.cfg, dataIn, dataOut);
    this.attachData = () => {
      dataIn?.attach(fromUpstream);
      dataOut?.attach(toDownstream);
    };
    if (!this.native) this.attachData();
  }

  /** Has the native plane give the data connections back and listens to them again; once. */
  private releaseNative(): Promise<void> {
    this.nativeReleased ??= this.native!.release().then(() => this.attachData!());
    return this.nativeReleased;
  }

  /** The edge chunks arrive on (paused while a frame of the next allreduce is held). */
  private get source(): UpstreamEdge | TcpDataIn {
    return this.dataIn ?? this.upstream!;
  }

  /** Sums `data` across all ranks in place; see `Allreducer.allreduce`. */
  async allreduce(data: Float32Array, tag: AllreduceTag): Promise<void> {
    checkAllreduceArgs(data, tag);
    if (this.state === 'closed') throw new CollectiveError(`rank ${this.rank}: ring is closed`);
    if (this.state === 'aborted') throw abortedEarlier(this.failure!, this.self);
    const inFlight = this.op?.sequence ?? this.nativeRunning;
    if (inFlight !== null) {
      throw new CollectiveConfigError(
        `rank ${this.rank}: allreduce called while allreduce #${inFlight} is in flight (one at a time)`,
      );
    }
    const sequence = this.started++;
    const t0 = performance.now();
    if (this.worldSize > 1) {
      if (this.peerClosed) {
        this.fail(this.peerClosed);
        throw this.peerClosed;
      }
      await (this.native ? this.runNative(this.native, data, tag, sequence) : this.run(data, tag, sequence));
    }
    this.lastSeconds = (performance.now() - t0) / 1000;
    this.seconds += this.lastSeconds;
    this.counters.allreduces++;
  }

  private run(data: Float32Array, tag: AllreduceTag, sequence: number): Promise<void> {
    const { cfg } = this;
    const op = new AllreduceOp({
      runId: cfg.runId,
      generation: cfg.generation,
      rank: this.rank,
      worldSize: cfg.worldSize,
      chunkElements: cfg.chunkElements,
      dtype: cfg.dtype,
      sequence,
      tag: { epoch: tag.epoch, step: tag.step, bf16Elements: tag.bf16Elements, span: tag.span },
      data,
      upstream: this.upstream!.peer,
      staging: this.staging,
      sink: this.sink!,
      finished: () => {
        this.op = null;
        this.stopTimer();
      },
    });
    this.op = op;
    this.touch();
    this.armTimer();
    try {
      op.start();
      const held = this.held;
      if (held) {
        this.held = null;
        op.onFrame(held);
        this.source.resume();
      }
    } catch (err) {
      this.fail(asCollective(err, this.rank));
    }
    return op.promise;
  }

  /** One allreduce on the native plane; a failure aborts the ring as the JavaScript plane's would. */
  private async runNative(
    plane: NativePlane,
    data: Float32Array,
    tag: AllreduceTag,
    sequence: number,
  ): Promise<void> {
    this.nativeRunning = sequence;
    try {
      const moved = await plane.allreduce(data, this.cfg.chunkElements * 4, tag, sequence);
      this.counters.bytesSent += moved.bytesSent;
      this.counters.framesSent += moved.framesSent;
      this.counters.bytesReceived += moved.bytesReceived;
      this.counters.framesReceived += moved.framesReceived;
    } catch (err) {
      if (this.state === 'ready') {
        this.fail(
          planeFailure(err as PlaneError, {
            ...this.cfg,
            self: this.rank,
            up: this.upstream!.peer,
            down: this.downstream!.peer,
            sequence,
            tag,
            length: data.length,
          }),
        );
      }
      // The plane's thread no longer reads `data` once it rejected; the aborts go out first.
      await this.releaseNative();
      throw this.failure ?? asCollective(err, this.rank);
    } finally {
      this.nativeRunning = null;
    }
  }

  private onUpstreamMessage(buf: Buffer): void {
    if (this.state !== 'ready') return;
    const up = this.upstream!.peer;
    this.counters.bytesReceived += buf.length;
    const { chunk, failure } = fromUpstream(buf, this.rank, up);
    if (failure) {
      this.fail(failure);
      return;
    }
    this.counters.framesReceived++;
    this.touch();
    try {
      this.dispatch(chunk, up);
    } catch (err) {
      this.fail(asCollective(err, this.rank));
      return;
    }
    const t = chunk.phase === PHASE_AG ? this.worldSize - 1 + chunk.phaseStep : chunk.phaseStep;
    holdIfAsked(
      this.faults,
      { sequence: chunk.sequence, frameIndex: this.counters.framesReceived - 1, t },
      this.source,
    );
  }

  private dispatch(chunk: DecodedChunk, up: PeerRef): void {
    const op = this.op;
    if (op && !op.receiveDone && chunk.sequence === op.sequence) {
      op.onFrame(chunk);
      return;
    }
    // The upstream may start the next allreduce before this rank does; keep its first frame
    // and stop reading (flow control then holds the rest) until this rank starts it too.
    if (!this.held && chunk.sequence === this.started && (!op || op.receiveDone)) {
      this.held = chunk;
      this.source.pause();
      return;
    }
    const now = op
      ? `allreduce #${op.sequence} is in flight${op.receiveDone ? ' and fully received' : ''}`
      : `the next allreduce is #${this.started}`;
    throw new ProtocolError(
      `rank ${this.rank}: ${describeRank(up.rank, up.address)} sent a frame of allreduce #${chunk.sequence} ` +
        `(epoch ${chunk.epoch}, step ${chunk.step}) but ${now}`,
      up.rank,
      up.address,
    );
  }

  private onDownstreamMessage(buf: Buffer): void {
    if (this.state !== 'ready') return;
    this.fail(fromDownstream(buf, this.rank, this.downstream!.peer));
  }

  private onEdgeEnded(
    which: 'upstream' | 'downstream',
    graceful: boolean,
    detail: string,
    oversize: boolean,
  ): void {
    if (this.state !== 'ready') return;
    const peer = which === 'upstream' ? this.upstream!.peer : this.downstream!.peer;
    const op = this.op;
    const running = op?.sequence ?? this.nativeRunning;
    const during = running !== null ? ` during allreduce #${running}` : '';
    if (oversize) {
      const text = `rank ${this.rank}: ${describeRank(peer.rank, peer.address)} sent an oversize frame${during} (${detail})`;
      this.fail(new ProtocolError(text, peer.rank, peer.address));
      return;
    }
    const err = new PeerLostError(
      `rank ${this.rank}: ${which} neighbour ${describeRank(peer.rank, peer.address)} ${detail}${during}`,
      peer.rank,
      peer.address,
    );
    // An orderly close only breaks the allreduce in flight if that still needs the edge; other
    // ranks may still be finishing it, so the ring is poisoned for the next call instead. (On
    // the native plane the call is not the data's edge: its data connection tells the plane.)
    const needed = op && (which === 'upstream' ? !op.receiveDone : op.sendPending);
    if (!graceful || needed) this.fail(err);
    else this.peerClosed ??= err;
  }

  /** Aborts this rank's ring and tells both neighbours. */
  abort(reason: string): void {
    this.fail(
      new RingAbortedError(`rank ${this.rank}: ring aborted locally: ${reason}`, {
        rank: this.rank,
        address: this.self.address,
        kind: 'local',
        message: reason,
      }),
    );
  }

  private fail(err: CollectiveError): void {
    if (this.state === 'aborted' || this.state === 'closed') return;
    this.state = 'aborted';
    this.failure = err;
    this.stopTimer();
    const sequence = this.op?.sequence ?? this.nativeRunning ?? this.started;
    const abort = abortFrame(originOf(err, this.self), { ...this.cfg, sequence });
    // On both the calls and the data connections, each before its end, so that whichever a
    // neighbour reads first is the abort naming the origin. The native plane first gives the
    // data connections back (it stops its allreduce, if any, at a frame's end).
    const tell = (edges: ReadonlyArray<UpstreamEdge | DownstreamEdge | TcpDataIn | TcpDataOut | null>) => {
      for (const edge of edges) edge?.sendAbort(abort);
      for (const edge of edges) edge?.endGracefully();
    };
    if (this.native) {
      tell([this.upstream, this.downstream]);
      void this.releaseNative().then(() => tell([this.dataIn, this.dataOut]));
    } else {
      tell([this.upstream, this.downstream, this.dataIn, this.dataOut]);
    }
    const op = this.op;
    this.op = null;
    // A zero-copy sink may still read the caller's array: the op rejects only once it no longer does.
    if (op) (this.dataOut ?? IDLE).afterWrites(CLOSE_GRACE_MS, () => op.fail(err));
  }

  private touch(): void {
    this.progress.touch();
  }

  private armTimer(): void {
    this.progress.arm(
      () => this.op !== null && this.state === 'ready',
      (idle) => {
        const op = this.op!;
        const peer = op.receiveDone ? this.downstream!.peer : this.upstream!.peer;
        const what = op.receiveDone
          ? `${describeRank(peer.rank, peer.address)} took none of our frames`
          : `no ${op.describeWait()} from ${describeRank(peer.rank, peer.address)}`;
        this.fail(
          new RingTimeoutError(
            `rank ${this.rank}: allreduce #${op.sequence} made no progress for ${Math.round(idle)} ms ` +
              `(timeoutMs ${this.cfg.timeoutMs}): ${what}`,
            [peer.rank],
          ),
        );
      },
    );
  }

  private stopTimer(): void {
    this.progress.stop();
  }

  /** Counters since creation. */
  stats(): RingStats {
    return { ...this.counters, seconds: this.seconds, lastSeconds: this.lastSeconds };
  }

  /** Ends both edges in order (so neighbours see a close, not a crash) and frees everything. */
  close(): Promise<void> {
    this.closing ??= this.closeNow();
    return this.closing;
  }

  private async closeNow(): Promise<void> {
    if (this.op || this.nativeRunning !== null) this.abort('ring closed during an allreduce');
    this.state = 'closed';
    this.stopTimer();
    if (this.native) await this.releaseNative();
    await closeInOrder([this.upstream, this.downstream, this.dataIn, this.dataOut], CLOSE_GRACE_MS);
    this.unregister?.();
    this.unregister = null;
    await this.ownedServer?.close();
    this.ownedServer = null;
  }
}
