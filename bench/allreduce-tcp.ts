/**
 * The ceiling for bench/allreduce.ts and bench:peers: the same pipelined ring allreduce (same
 * schedule, segments, chunks and reduction order) over plain TCP sockets from `node:net`, with a
 * 12-byte header [ring step, chunk, payload bytes] and no protobuf or HTTP/2, written the way a
 * raw-TCP data plane in Node would be: the payload leaves as a view of the caller's array (no
 * copy; the schedule never changes a range before the neighbour has received it, and the
 * allreduce ends only after the last write), and arrives through one reused read buffer (`onread`:
 * no allocation per read) straight into the array (copy steps) or into aligned staging, then
 * added (reduce steps). Not for production: no validation, no failure handling.
 */
import net from 'node:net';
import {
  chunkRange,
  chunksInSegment,
  isReduceStep,
  ReceiveCursor,
  ringSteps,
  sendSegment,
} from '../src/collective/internal.ts';
import { addFloat32 } from '../src/collective/simd-add.ts';

const HEADER = 12;
const READ_BUFFER_BYTES = 1 << 20;

/** One allreduce's receive side: the frame being read and where its bytes go. */
interface Receiver {
  /** Whether every frame of this allreduce has arrived (later bytes belong to the next one). */
  done(): boolean;
  /** Called with each complete frame's ring step once its payload is in place. */
  frame(t: number): void;
  /** Where payload bytes of a frame at ring step t go (a view the length of the payload). */
  target(t: number, bytes: number): Uint8Array;
}

/** A TCP ring member: receives from rank-1 on a socket it dials, sends to rank+1 on one it accepts. */
export class TcpRing {
  private out!: net.Socket;
  private in!: net.Socket;
  private staging = new Float32Array(0);
  private receiver: Receiver | null = null;
  /** Header bytes gathered so far of the frame being read, and its payload progress. */
  private readonly head = Buffer.alloc(HEADER);
  private headAt = 0;
  private payload: Uint8Array | null = null;
  private payloadAt = 0;
  private frameT = 0;
  /** Bytes of the next allreduce that arrived before it started here (copied; reading paused). */
  private early: Uint8Array[] = [];

  private constructor(
    readonly rank: number,
    readonly worldSize: number,
    private readonly chunkElements: number,
  ) {}

  /** Listens on `server` for rank+1 and dials rank-1 at `peers[rank-1]` (retrying while it starts). */
  static async create(
    rank: number,
    worldSize: number,
    peers: readonly string[],
    server: net.Server,
    chunkBytes: number,
  ): Promise<TcpRing> {
    const ring = new TcpRing(rank, worldSize, chunkBytes / 4);
    const outgoing = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const [host, port] = peers[(rank + worldSize - 1) % worldSize].split(':');
    const readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    for (let i = 0; ; i++) {
      try {
        ring.in = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(
            {
              host,
              port: Number(port),
              noDelay: true,
              onread: { buffer: readBuffer, callback: (n: number, buf: Uint8Array) => ring.onRead(buf, n) },
            },
            () => resolve(s),
          );
          s.once('error', reject);
        });
        break;
      } catch (err) {
        if (i > 100) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    ring.out = await outgoing;
    ring.out.setNoDelay(true);
    return ring;
  }

  /** Consumes n bytes of the read buffer; false (pause reading) when they outrun this rank. */
  private onRead(buf: Uint8Array, n: number): boolean {
    const rest = this.consume(buf, n);
    if (rest === n) return true;
    this.early.push(Uint8Array.prototype.slice.call(buf, rest, n));
    return false;
  }

  /** Headers into `head`, payloads to their targets; returns how many bytes it took. */
  private consume(buf: Uint8Array, n: number): number {
    let at = 0;
    while (at < n) {
      if (!this.payload) {
        if (!this.receiver || this.receiver.done()) return at;
        const k = Math.min(HEADER - this.headAt, n - at);
        this.head.set(buf.subarray(at, at + k), this.headAt);
        this.headAt += k;
        at += k;
        if (this.headAt < HEADER) break;
        this.headAt = 0;
        this.frameT = this.head.readUInt32LE(0);
        this.payload = this.receiver!.target(this.frameT, this.head.readUInt32LE(8));
        this.payloadAt = 0;
      }
      const k = Math.min(this.payload.length - this.payloadAt, n - at);
      this.payload.set(buf.subarray(at, at + k), this.payloadAt);
      this.payloadAt += k;
      at += k;
      if (this.payloadAt === this.payload.length) {
        this.payload = null;
        this.receiver!.frame(this.frameT);
      }
    }
    return n;
  }

  /** In-place sum over the ring, same schedule and order of additions as RingAllreduce. */
  allreduce(data: Float32Array): Promise<void> {
    const W = this.worldSize;
    const n = data.length;
    const ce = this.chunkElements;
    if (this.staging.length < ce) this.staging = new Float32Array(ce);
    const staging = this.staging;
    const stagingBytes = new Uint8Array(staging.buffer);
    const cursor = new ReceiveCursor(n, W, this.rank, ce);
    const queueT: number[] = [];
    const queueC: number[] = [];
    let head = 0;
    let blocked = false;
    let unflushed = 0;
    return new Promise<void>((resolve) => {
      const finish = (): void => {
        if (cursor.done && head === queueT.length && !blocked && unflushed === 0) {
          this.receiver = null;
          resolve();
        }
      };
      const flushed = (): void => {
        unflushed--;
        finish();
      };
      const send = (): void => {
        while (!blocked && head < queueT.length) {
          const t = queueT[head];
          const c = queueC[head++];
          const r = chunkRange(n, W, sendSegment(this.rank, t, W), c, ce);
          const header = Buffer.allocUnsafe(HEADER);
          header.writeUInt32LE(t, 0);
          header.writeUInt32LE(c, 4);
          header.writeUInt32LE(r.length * 4, 8);
          this.out.cork();
          this.out.write(header);
          unflushed++;
          const more = this.out.write(
            new Uint8Array(data.buffer, data.byteOffset + r.offset * 4, r.length * 4),
            flushed,
          );
          this.out.uncork();
          if (!more) {
            blocked = true;
            this.out.once('drain', () => {
              blocked = false;
              send();
              finish();
            });
          }
        }
      };
      this.receiver = {
        done: () => cursor.done,
        target: (t, bytes) => {
          const r = cursor.range;
          if (isReduceStep(t, W)) return stagingBytes.subarray(0, bytes);
          return new Uint8Array(data.buffer, data.byteOffset + r.offset * 4, bytes);
        },
        frame: (t) => {
          const r = cursor.range;
          if (isReduceStep(t, W)) addFloat32(data.subarray(r.offset, r.offset + r.length), staging);
          const c = cursor.next.chunk;
          cursor.advance();
          if (t + 1 < ringSteps(W)) {
            queueT.push(t + 1);
            queueC.push(c);
          }
          send();
          finish();
        },
      };
      const seg = sendSegment(this.rank, 0, W);
      for (let c = 0; c < chunksInSegment(n, W, seg, ce); c++) {
        queueT.push(0);
        queueC.push(c);
      }
      send();
      const early = this.early;
      this.early = [];
      for (const [i, bytes] of early.entries()) {
        const took = this.consume(bytes, bytes.length);
        if (took < bytes.length) {
          this.early = [bytes.subarray(took), ...early.slice(i + 1)];
          break;
        }
      }
      if (this.early.length === 0) this.in.resume();
      finish();
    });
  }

  /** Closes both sockets. */
  close(): void {
    this.out.destroy();
    this.in.destroy();
  }
}
