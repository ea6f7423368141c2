/**
 * The native prototype addon (ring_plane.c, poll_loop.c, wire_napi.c; built by build.sh into
 * build/ring_plane.node): its functions as one type, and the one place that loads it. Bench only.
 * WIRE_CHECK_ADDON names another build (wire-check-asan.sh: one with ASan and UBSan).
 */
import { createRequire } from 'node:module';
import type { ChunkHeader } from '../../../src/collective/frame-codec.ts';

/** The ring plane: its own loopback sockets (`listen`/`connect`/`accept`) or JavaScript's (`create`/`adopt`). */
export interface RingPlane {
  listen(
    rank: number,
    worldSize: number,
    sockbufBytes: number,
    threads: number,
    runId?: string,
    generation?: number,
  ): [unknown, number];
  connect(plane: unknown, port: number): void;
  accept(plane: unknown): void;
  create(rank: number, worldSize: number, runId?: string, generation?: number, timeoutMs?: number): unknown;
  adopt(plane: unknown, recvFd: number, sendFd: number): void;
  allreduce(
    plane: unknown,
    data: Float32Array,
    chunkBytes: number,
    epoch?: number,
    step?: number,
  ): Promise<void>;
  cancel(plane: unknown): boolean;
  close(plane: unknown): void;
  hugepages(data: Float32Array): number;
}

/** The wire module's test entry points (wire.c through wire_napi.c). */
export interface Wire {
  encodeChunkHeader(h: ChunkHeader, payloadBytes?: number): Buffer;
  expectedHeader(h: ChunkHeader, payloadBytes?: number): Buffer;
  classify(message: Buffer, h: ChunkHeader, payloadBytes?: number): 'match' | 'other';
  payloadAt(message: Buffer, h: ChunkHeader, payloadBytes?: number): number;
  prefix(five: Buffer): number;
}

/** What an allreduce of the plane rejects with. */
export interface PlaneError extends Error {
  code: 'cancelled' | 'timeout' | 'frame' | 'closed' | 'lost' | 'protocol' | 'error';
  side: 'upstream' | 'downstream' | 'local';
  peerRank: number;
  sendBroken: boolean;
  recvBroken: boolean;
  frame?: Buffer;
}

let loaded: (RingPlane & Wire) | undefined;

/** The addon (loaded on first call). */
export function nativeAddon(): RingPlane & Wire {
  loaded ??= createRequire(import.meta.url)(
    process.env.WIRE_CHECK_ADDON ?? './build/ring_plane.node',
  ) as RingPlane & Wire;
  return loaded;
}
