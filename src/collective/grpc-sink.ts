/**
 * The gRPC ring's chunk sink: each chunk becomes one RingResponse{chunk} frame in a pooled
 * buffer (header, then the payload copied or rounded to bf16), written on the downstream call.
 * grpc-js copies the frame, so the buffer returns to the pool in the write callback and the
 * caller's array is never read after `send` returns.
 */
import type { ChunkSink } from './allreduce-op.ts';
import { encodeMixed, mixedBytes, type Staging } from './bf16.ts';
import type { DownstreamEdge } from './edges.ts';
import type { FaultInjector, FrameSite } from './faults.ts';
import { type ChunkHeader, encodeChunkFrame, FramePool } from './frame-codec.ts';

/** Frames chunks onto a DownstreamEdge. */
export class GrpcChunkSink implements ChunkSink {
  readonly busy = false;
  private readonly pool: FramePool;

  constructor(
    private readonly edge: DownstreamEdge,
    frameCapacity: number,
    private readonly staging: Staging,
    /** Told each frame's size once written. */
    private readonly sent: (bytes: number) => void,
    private readonly faults: FaultInjector | undefined,
  ) {
    this.pool = new FramePool(frameCapacity);
  }

  send(header: ChunkHeader, values: Float32Array, bf16: number, site: FrameSite): boolean | 'stall' {
    const { frame, payloadAt } = encodeChunkFrame(header, mixedBytes(values.length, bf16), this.pool.alloc);
    encodeMixed(this.staging, values, bf16, frame, payloadAt);
    let out = frame;
    if (this.faults?.beforeSend) {
      const action = this.faults.beforeSend(site, frame);
      if (action === 'stall') return 'stall';
      out = action;
    }
    const more = this.edge.write(out, () => this.pool.release(frame));
    this.sent(out.length);
    return more;
  }
}
