/**
 * The raw-TCP data plane of a ring edge (`transport: 'tcp'`): chunk data of the allreduce travels
 * on one plain TCP connection per edge instead of the gRPC call, which then carries only control
 * (hello/accept, aborts, keepalive). Why: grpc-js copies every message twice, allocates two fresh
 * buffers per message and delivers HTTP/2 DATA frames 16 KiB at a time; the same ring over a
 * socket costs about a quarter of the CPU (docs/performance.md).
 *
 * Wire: gRPC's length-prefixed message framing (a zero flag byte, a 4-byte big-endian length, the
 * message) without HTTP/2, so the messages and their alignment are those of the Ring call
 * (frame-codec.ts); a message of length 0 announces an orderly close (see DataTransport in
 * proto/bbn/v1/collective.proto). A connection that ends without it was lost.
 *
 * - `TcpDataIn`: the receiver's end (the rank that made the Ring call). It dials the upstream's
 *   data port and reads each message straight into one reused buffer (`onread` with a buffer
 *   function: no allocation and no extra copy per read). The buffer lives in the memory of a
 *   SIMD reduce kernel (`kernelBuffer`), and chunk payloads arrive 4-byte aligned, so they are
 *   added from there without another copy. It writes only aborts and the close marker.
 * - `TcpDataOut`: the sender's end, a ChunkSink. A float32 chunk leaves as a pooled header and a
 *   view of the caller's array (no copy); the schedule never changes a range before the
 *   neighbour received it, and `busy` holds the allreduce open until the last write was handed
 *   to the kernel. bf16 chunks are encoded into pooled frames.
 */
import net from 'node:net';
import type { bbn } from '../generated/bbn.js';
import type { ChunkSink } from './allreduce-op.ts';
import { encodeMixed, mixedBytes, type Staging } from './bf16.ts';
import { DATA_MAGIC } from './data-listener.ts';
import { Edge, type PeerRef } from './edges.ts';
import type { FaultInjector, FrameSite } from './faults.ts';
import {
  type ChunkHeader,
  encodeRequest,
  encodeResponse,
  FramePool,
  planChunkFrame,
  writeChunkHeader,
} from './frame-codec.ts';
import { kernelBuffer } from './simd-add.ts';

/** Bytes of the length prefix of every message. */
export const PREFIX_BYTES = 5;
const BYE = Buffer.alloc(PREFIX_BYTES);

/** Prefixes one message. */
function framed(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(PREFIX_BYTES + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, PREFIX_BYTES);
  return out;
}

/**
 * Splits a byte stream into messages inside one buffer: `target()` is where the next bytes go,
 * `advance(n)` accounts for n bytes written there. Messages are views of the buffer, valid until
 * the next `advance`.
 */
class MessageReader {
  private readonly buf: Buffer;
  private filled = 0;
  /** Length of the message being read; -1 while reading its prefix. */
  private length = -1;
  /** Set once the stream broke the framing; later bytes are ignored. */
  private broken = false;

  constructor(
    private readonly maxMessage: number,
    private readonly sink: {
      message(msg: Buffer): void;
      bye(): void;
      bad(detail: string, oversize: boolean): void;
    },
    allocate: (bytes: number) => Buffer = Buffer.allocUnsafeSlow,
  ) {
    this.buf = allocate(PREFIX_BYTES + maxMessage);
  }

  /** The region the next read fills (never past the current message). */
  target(): Buffer {
    if (this.broken) return this.buf.subarray(0, PREFIX_BYTES);
    return this.length < 0
      ? this.buf.subarray(this.filled, PREFIX_BYTES)
      : this.buf.subarray(this.filled, PREFIX_BYTES + this.length);
  }

  /** n bytes were written at `target()`. */
  advance(n: number): void {
    if (this.broken) return;
    this.filled += n;
    if (this.length < 0) {
      if (this.filled < PREFIX_BYTES) return;
      const length = this.buf.readUInt32BE(1);
      if (this.buf[0] !== 0) {
        this.broken = true;
        this.sink.bad(`message flag ${this.buf[0]} (compression is not supported)`, false);
        return;
      }
      if (length > this.maxMessage) {
        this.broken = true;
        this.sink.bad(`data message of ${length} bytes, limit ${this.maxMessage}`, true);
        return;
      }
      if (length === 0) {
        this.filled = 0;
        this.sink.bye();
        return;
      }
      this.length = length;
      return;
    }
    if (this.filled < PREFIX_BYTES + this.length) return;
    const msg = this.buf.subarray(PREFIX_BYTES, PREFIX_BYTES + this.length);
    this.filled = 0;
    this.length = -1;
    this.sink.message(msg);
  }

  /** Copies `chunk` through `target()` (for sockets that deliver their own buffers). */
  feed(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.broken) {
      const t = this.target();
      const k = Math.min(t.length, chunk.length - at);
      t.set(chunk.subarray(at, at + k));
      at += k;
      this.advance(k);
    }
  }
}

/** The parts of libuv's TCP handle behind a net.Socket that lending it needs (see `lend`). */
interface TcpHandle {
  fd: number;
  reading: boolean;
  readStop(): number;
  readStart(): number;
}

/** Socket plumbing shared by both ends: orderly close marker, loss detection, aborts. */
abstract class TcpEdge extends Edge {
  protected byeSeen = false;

  constructor(
    protected readonly socket: net.Socket,
    peer: PeerRef,
  ) {
    super(peer);
    socket.setNoDelay(true);
    socket.on('end', () => {
      if (this.byeSeen) this.end(true, 'closed its ring edge');
      else this.end(false, 'data connection lost (ended without an orderly close)');
    });
    socket.on('error', (err) => this.end(false, `data connection failed: ${err.message}`));
    socket.on('close', () => {
      if (this.byeSeen) this.end(true, 'closed its ring edge');
      else this.end(false, 'data connection closed (connection lost)');
    });
  }

  /**
   * The peer broke the framing: nothing more is read, and the ring is told (it then aborts, and
   * the abort still goes out on this connection before it closes, so the peer learns the cause
   * instead of a reset).
   */
  protected bad(detail: string, oversize = false): void {
    this.socket.pause();
    this.end(false, oversize ? detail : `sent a bad data message (${detail})`, oversize);
  }

  /** Announces an orderly close, then half-closes; the peer sees a graceful end. */
  endGracefully(): void {
    if (this.socket.writable) this.socket.end(BYE);
  }

  /** Closes the connection at once. */
  destroy(): void {
    this.finished = true;
    this.markEndedNow();
    this.socket.destroy();
  }

  protected write(message: Uint8Array): void {
    if (this.socket.writable && !this.socket.destroyed) this.socket.write(framed(message));
  }

  /**
   * Lends the connection's descriptor to the native data plane (native-plane.ts): JavaScript stops
   * reading it, so every byte the peer sends stays in the kernel for the plane. Only before the
   * ring attaches, and only while JavaScript holds none of its bytes (nothing read, kept or
   * waiting to be written); null otherwise, and then the edge stays JavaScript's.
   *
   * Two undocumented parts of Node's net.Socket, because no documented call does this:
   * `_handle.fd` (Linux and macOS; -1 on Windows: null) and `_handle.readStop()`. `pause()` alone
   * does not stop libuv reading a socket without `onread`: it still reads up to its highWaterMark
   * into JavaScript, and those bytes would be lost to the plane.
   */
  lend(): number | null {
    const socket = this.socket;
    const handle = (socket as unknown as { _handle?: TcpHandle })._handle;
    if (
      this.attached ||
      this.holdsEarly ||
      this.finished ||
      !handle ||
      !(handle.fd >= 0) ||
      socket.readableLength !== 0 ||
      socket.writableLength !== 0
    ) {
      return null;
    }
    socket.pause();
    if (handle.reading) {
      handle.reading = false;
      if (handle.readStop() !== 0) return null;
    }
    return handle.fd;
  }

  /**
   * Takes a lent connection back (the plane no longer uses it): libuv reads it again once the
   * ring attaches. The stream may still count a read as pending from before the loan, so
   * `resume()` alone would not start one: the handle restarts as Node's own tryReadStart does.
   */
  reclaim(): void {
    const handle = (this.socket as unknown as { _handle?: TcpHandle })._handle;
    if (handle && !handle.reading && !this.socket.destroyed) {
      handle.reading = true;
      handle.readStart();
    }
  }
}

/** The receiving end of an edge's data connection (see the module comment). */
export class TcpDataIn extends TcpEdge {
  private constructor(socket: net.Socket, peer: PeerRef) {
    super(socket, peer);
  }

  /**
   * Dials the upstream neighbour's data port and names the edge with `token`. Resolves once
   * connected; incoming messages wait (reading paused) until the ring attaches.
   */
  static connect(
    host: string,
    port: number,
    token: Uint8Array,
    peer: PeerRef,
    maxMessage: number,
  ): Promise<TcpDataIn> {
    let edge: TcpDataIn | null = null;
    const reader = new MessageReader(
      maxMessage,
      {
        message: (msg) => edge?.onMessage(msg),
        bye: () => {
          if (edge) edge.byeSeen = true;
        },
        bad: (detail, oversize) => edge?.bad(detail, oversize),
      },
      kernelBuffer,
    );
    return new Promise((resolve, reject) => {
      const socket = net.connect({
        host,
        port,
        noDelay: true,
        onread: {
          buffer: () => reader.target(),
          callback: (n: number) => {
            reader.advance(n);
            return true;
          },
        },
      });
      const onError = (err: Error): void => reject(err);
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        socket.write(Buffer.concat([DATA_MAGIC, token]));
        edge = new TcpDataIn(socket, peer);
        // Until the ring attaches, nothing is read (the Edge keeps what arrived before).
        socket.pause();
        resolve(edge);
      });
    });
  }

  private onMessage(msg: Buffer): void {
    // Before the ring attaches the message is kept, so it must not stay a view of the reader.
    this.deliver(this.attached ? msg : Buffer.from(msg));
  }

  protected override doPause(): void {
    this.socket.pause();
  }

  protected override doResume(): void {
    this.socket.resume();
  }

  /** Sends an abort upstream (best effort). */
  sendAbort(abort: bbn.v1.RingAbort.$Properties): void {
    this.write(encodeRequest({ abort }));
  }
}

/** Options of a TcpDataOut. */
export interface TcpDataOutOptions {
  /** Largest message the neighbour accepts. */
  readonly maxMessage: number;
  readonly staging: Staging;
  /** Told each frame's size once handed to the socket. */
  readonly sent: (bytes: number) => void;
  readonly faults?: FaultInjector;
}

/** Header buffers: a chunk header is at most ~100 bytes plus the run id. */
const HEADER_CAPACITY = 512;

/** The sending end of an edge's data connection, and the ring's ChunkSink on it. */
export class TcpDataOut extends TcpEdge implements ChunkSink {
  private readonly headers = new FramePool(HEADER_CAPACITY);
  private readonly frames: FramePool;
  /** Buffers of written frames, in write order, returned to their pool as writes complete. */
  private readonly inFlight: Buffer[] = [];
  private inFlightHead = 0;
  private readonly onWritten = (): void => this.written();

  constructor(
    socket: net.Socket,
    peer: PeerRef,
    private readonly opts: TcpDataOutOptions,
  ) {
    super(socket, peer);
    this.frames = new FramePool(PREFIX_BYTES + opts.maxMessage);
    const reader = new MessageReader(64 * 1024, {
      message: (msg) => this.deliver(Buffer.from(msg)),
      bye: () => {
        this.byeSeen = true;
      },
      bad: (detail, oversize) => this.bad(detail, oversize),
    });
    socket.on('data', (chunk: Buffer) => reader.feed(chunk));
    socket.on('drain', () => this.notifyDrain());
    socket.pause();
  }

  /** Whether written frames still wait for the kernel (they may view a caller's array). */
  get busy(): boolean {
    return this.inFlightHead < this.inFlight.length;
  }

  private idleWaiters: Array<() => void> = [];

  /**
   * Runs `then` once no written frame waits any more (each was taken by the kernel): at once when
   * none does; if the neighbour reads nothing for `graceMs`, the connection is destroyed, which
   * makes libuv cancel the writes (it then no longer reads the caller's array) and fire their
   * callbacks.
   */
  afterWrites(graceMs: number, then: () => void): void {
    if (!this.busy) {
      then();
      return;
    }
    const timer = setTimeout(() => this.destroy(), graceMs);
    this.idleWaiters.push(() => {
      clearTimeout(timer);
      then();
    });
  }

  send(header: ChunkHeader, values: Float32Array, bf16: number, site: FrameSite): boolean | 'stall' {
    const plan = planChunkFrame(header, mixedBytes(values.length, bf16));
    const socket = this.socket;
    const faults = this.opts.faults?.beforeSend ? this.opts.faults : undefined;
    if (bf16 === 0 && !faults) {
      const head = this.headers.alloc(PREFIX_BYTES + plan.headerBytes);
      head[0] = 0;
      head.writeUInt32BE(plan.total, 1);
      writeChunkHeader(header, plan, head, PREFIX_BYTES);
      socket.cork();
      socket.write(head);
      const more = socket.write(
        new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
        this.onWritten,
      );
      socket.uncork();
      this.inFlight.push(head);
      this.opts.sent(PREFIX_BYTES + plan.total);
      return more;
    }
    const frame = this.frames.alloc(PREFIX_BYTES + plan.total);
    frame[0] = 0;
    frame.writeUInt32BE(plan.total, 1);
    const payloadAt = writeChunkHeader(header, plan, frame, PREFIX_BYTES);
    encodeMixed(this.opts.staging, values, bf16, frame, payloadAt);
    let out = frame;
    if (faults?.beforeSend) {
      const message = frame.subarray(PREFIX_BYTES);
      const action = faults.beforeSend(site, message);
      if (action === 'stall') return 'stall';
      if (action !== message) out = framed(action);
    }
    const more = socket.write(out, this.onWritten);
    this.inFlight.push(frame);
    this.opts.sent(out.length);
    return more;
  }

  private written(): void {
    const buf = this.inFlight[this.inFlightHead++];
    this.headers.release(buf);
    this.frames.release(buf);
    if (this.inFlightHead === this.inFlight.length) {
      this.inFlight.length = 0;
      this.inFlightHead = 0;
      this.notifyFlushed();
      for (const idle of this.idleWaiters.splice(0)) idle();
    }
  }

  protected override doPause(): void {
    this.socket.pause();
  }

  protected override doResume(): void {
    this.socket.resume();
  }

  /** Sends an abort downstream (best effort; it queues behind frames already written). */
  sendAbort(abort: bbn.v1.RingAbort.$Properties): void {
    this.write(encodeResponse({ abort }));
  }
}
