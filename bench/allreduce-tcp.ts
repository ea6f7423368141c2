/**
 * The ceiling for bench/allreduce.ts: the same pipelined ring allreduce (same schedule, segments,
 * chunks and reduction) over plain TCP sockets from `node:net`, with a 12-byte header
 * [ring step, chunk, payload bytes] and no protobuf or HTTP/2. Not for production: no
 * validation, no failure handling.
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

const HEADER = 12;

/** A TCP ring member: sends to rank+1, receives from rank-1. */
export class TcpRing {
  private out!: net.Socket;
  private in!: net.Socket;
  private readonly pending: Buffer[] = [];
  private pendingBytes = 0;
  private staging = new Float32Array(0);
  private onBytes: (() => void) | null = null;

  private constructor(
    readonly rank: number,
    readonly worldSize: number,
    private readonly chunkElements: number,
  ) {}

  /** Listens on `server` for rank-1 and dials rank+1 at `peers[rank+1]` (retrying while it starts). */
  static async create(
    rank: number,
    worldSize: number,
    peers: readonly string[],
    server: net.Server,
    chunkBytes: number,
  ): Promise<TcpRing> {
    const ring = new TcpRing(rank, worldSize, chunkBytes / 4);
    const incoming = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const [host, port] = peers[(rank + 1) % worldSize].split(':');
    for (let i = 0; ; i++) {
      try {
        ring.out = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect({ host, port: Number(port), noDelay: true }, () => resolve(s));
          s.once('error', reject);
        });
        break;
      } catch (err) {
        if (i > 100) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    ring.in = await incoming;
    ring.in.setNoDelay(true);
    ring.in.on('data', (b: Buffer) => {
      ring.pending.push(b);
      ring.pendingBytes += b.length;
      ring.onBytes?.();
    });
    return ring;
  }

  /** In-place sum over the ring, same schedule as RingAllreduce. */
  allreduce(data: Float32Array): Promise<void> {
    const W = this.worldSize;
    const n = data.length;
    const ce = this.chunkElements;
    if (this.staging.length < ce) this.staging = new Float32Array(ce);
    const cursor = new ReceiveCursor(n, W, this.rank, ce);
    const queue: Array<[number, number]> = [];
    let blocked = false;
    return new Promise<void>((resolve) => {
      const send = (): void => {
        while (!blocked && queue.length > 0) {
          const [t, c] = queue.shift()!;
          const r = chunkRange(n, W, sendSegment(this.rank, t, W), c, ce);
          const header = Buffer.allocUnsafe(HEADER);
          header.writeUInt32LE(t, 0);
          header.writeUInt32LE(c, 4);
          header.writeUInt32LE(r.length * 4, 8);
          this.out.write(header);
          // A copy, as the gRPC path makes one too (data may change after the call returns).
          const payload = Buffer.from(
            new Uint8Array(data.buffer, data.byteOffset + r.offset * 4, r.length * 4),
          );
          if (!this.out.write(payload)) {
            blocked = true;
            this.out.once('drain', () => {
              blocked = false;
              send();
              finish();
            });
          }
        }
      };
      const finish = (): void => {
        if (cursor.done && queue.length === 0 && !blocked) {
          this.onBytes = null;
          resolve();
        }
      };
      const receive = (): void => {
        while (!cursor.done && this.pendingBytes >= HEADER) {
          const head = this.peek(HEADER);
          const t = head.readUInt32LE(0);
          const c = head.readUInt32LE(4);
          const bytes = head.readUInt32LE(8);
          if (this.pendingBytes < HEADER + bytes) break;
          this.take(HEADER, null);
          const stage = new Uint8Array(this.staging.buffer, 0, bytes);
          this.take(bytes, stage);
          const r = cursor.range;
          const dst = data.subarray(r.offset, r.offset + r.length);
          if (isReduceStep(t, W)) {
            const src = this.staging;
            for (let i = 0; i < dst.length; i++) dst[i] += src[i];
          } else dst.set(this.staging.subarray(0, r.length));
          cursor.advance();
          if (t + 1 < ringSteps(W)) queue.push([t + 1, c]);
          send();
        }
        finish();
      };
      const seg = sendSegment(this.rank, 0, W);
      for (let c = 0; c < chunksInSegment(n, W, seg, ce); c++) queue.push([0, c]);
      send();
      this.onBytes = receive;
      receive();
    });
  }

  private peek(n: number): Buffer {
    if (this.pending[0].length >= n) return this.pending[0];
    return Buffer.concat(this.pending).subarray(0, n);
  }

  /** Removes n bytes from the front, copying them into `into` when given. */
  private take(n: number, into: Uint8Array | null): void {
    let at = 0;
    while (at < n) {
      const b = this.pending[0];
      const k = Math.min(b.length, n - at);
      if (into) into.set(b.subarray(0, k), at);
      at += k;
      if (k === b.length) this.pending.shift();
      else this.pending[0] = b.subarray(k);
    }
    this.pendingBytes -= n;
  }

  /** Closes both sockets. */
  close(): void {
    this.out.destroy();
    this.in.destroy();
  }
}
