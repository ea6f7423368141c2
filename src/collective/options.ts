/**
 * Validation of `RingAllreduceOptions` and of each allreduce's arguments. Every message names
 * the field and quotes the bad value.
 */

import type { RunToken } from '../auth/run-token.ts';
import {
  type AllreduceTag,
  CollectiveConfigError,
  type DataPlaneChoice,
  type ListenAddress,
  type RingAllreduceOptions,
  type RingTransport,
} from './api.ts';
import type { WireDtypeName } from './bf16.ts';
import { checkKeepalive, DEFAULT_KEEPALIVE_MS } from './keepalive.ts';

/** Largest frame payload accepted (also bounds the client's max receive message size). */
export const MAX_CHUNK_BYTES = 16 * 1024 * 1024;
/**
 * Default bytes of float32 data per frame. 4 MiB took 10-20% less CPU than 1 MiB at 100 MB on
 * the tcp ring (fewer frames, reads and write callbacks) and the same at 2-32 and 245 MB
 * (docs/performance.md, fifth round).
 */
export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;
/** Bytes allowed for a frame's header on top of its payload. */
export const FRAME_HEADER_ALLOWANCE = 64 * 1024;
const UINT32_MAX = 0xffffffff;

/** Validated, defaulted ring settings. */
export interface RingConfig {
  readonly runId: string;
  readonly generation: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly peers: readonly string[];
  /** Elements of float32 data per frame. */
  readonly chunkElements: number;
  readonly dtype: WireDtypeName;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly keepaliveMs: number;
  readonly transport: RingTransport;
  readonly dataPlane: DataPlaneChoice;
  readonly token?: RunToken;
}

const DATA_PLANES: readonly DataPlaneChoice[] = ['auto', 'native', 'js'];

function isUint32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= UINT32_MAX;
}

function positiveMs(name: string, v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new CollectiveConfigError(
      `RingAllreduceOptions.${name} (${String(v)}) must be a positive number of ms`,
    );
  }
  return v;
}

/** Checks the options and fills in defaults. */
export function resolveOptions(opts: RingAllreduceOptions): RingConfig {
  const { runId, generation, rank, worldSize, peers } = opts;
  if (typeof runId !== 'string' || runId.length === 0) {
    throw new CollectiveConfigError(
      `RingAllreduceOptions.runId (${JSON.stringify(runId)}) must be a non-empty string`,
    );
  }
  if (!isUint32(generation)) {
    throw new CollectiveConfigError(
      `RingAllreduceOptions.generation (${generation}) must be an integer in [0, 2^32)`,
    );
  }
  if (!Number.isInteger(worldSize) || worldSize < 1 || worldSize > 65_535) {
    throw new CollectiveConfigError(
      `RingAllreduceOptions.worldSize (${worldSize}) must be an integer in [1, 65535]`,
    );
  }
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
    throw new CollectiveConfigError(
      `RingAllreduceOptions.rank (${rank}) must be an integer in [0, ${worldSize - 1}]`,
    );
  }
  if (!Array.isArray(peers) || peers.length !== worldSize) {
    throw new CollectiveConfigError(
      `RingAllreduceOptions.peers has ${Array.isArray(peers) ? peers.length : String(peers)} entries, expected worldSize (${worldSize})`,
    );
  }
  peers.forEach((p, i) => {
    if (worldSize > 1 && (typeof p !== 'string' || !/^.+:\d+$/.test(p))) {
      throw new CollectiveConfigError(
        `RingAllreduceOptions.peers[${i}] (${JSON.stringify(p)}) must be "host:port"`,
      );
    }
  });
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (
    !Number.isInteger(chunkBytes) ||
    chunkBytes < 4 ||
    chunkBytes > MAX_CHUNK_BYTES ||
    chunkBytes % 4 !== 0
  ) {
    throw new CollectiveConfigError(
      `RingAllreduceOptions.chunkBytes (${chunkBytes}) must be a multiple of 4 in [4, ${MAX_CHUNK_BYTES}]`,
    );
  }
  const compress = opts.compress ?? 'none';
  if (compress !== 'none' && compress !== 'bf16') {
    throw new CollectiveConfigError(
      `RingAllreduceOptions.compress (${JSON.stringify(compress)}) must be 'none' or 'bf16'`,
    );
  }
  const transport = opts.transport ?? 'tcp';
  if (transport !== 'grpc' && transport !== 'tcp') {
    throw new CollectiveConfigError(
      `RingAllreduceOptions.transport (${JSON.stringify(transport)}) must be 'grpc' or 'tcp'`,
    );
  }
  const dataPlane = opts.dataPlane ?? 'auto';
  if (!DATA_PLANES.includes(dataPlane)) {
    throw new CollectiveConfigError(
      `RingAllreduceOptions.dataPlane (${JSON.stringify(dataPlane)}) must be 'auto', 'native' or 'js'`,
    );
  }
  return {
    runId,
    generation,
    rank,
    worldSize,
    peers: [...peers],
    chunkElements: chunkBytes / 4,
    dtype: compress === 'bf16' ? 'bf16' : 'f32',
    timeoutMs: positiveMs('timeoutMs', opts.timeoutMs, 60_000),
    connectTimeoutMs: positiveMs('connectTimeoutMs', opts.connectTimeoutMs, 30_000),
    keepaliveMs: resolveKeepalive(opts),
    transport,
    dataPlane,
    token: opts.token,
  };
}

/**
 * The ring's keepalive: the shared server's (its edges' other end), or the option for a
 * ring-owned server, default DEFAULT_KEEPALIVE_MS. A value that differs from the shared server's
 * is refused: both ends of an edge must ping alike (keepalive.ts).
 */
function resolveKeepalive(opts: RingAllreduceOptions): number {
  const own =
    opts.keepaliveMs === undefined
      ? undefined
      : checkKeepalive('RingAllreduceOptions.keepaliveMs', opts.keepaliveMs);
  const server = opts.server?.keepaliveMs;
  if (server === undefined) return own ?? DEFAULT_KEEPALIVE_MS;
  if (own !== undefined && own !== server) {
    throw new CollectiveConfigError(
      `RingAllreduceOptions.keepaliveMs (${own}) differs from the peer server's keepaliveMs (${server}): both ends of a ring edge use one keepalive; set it on CollectiveServer.listen and leave it out here`,
    );
  }
  return server;
}

/** Splits "host:port" (IPv6 hosts in brackets) for binding a ring-owned server. */
export function parseHostPort(address: string): ListenAddress {
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(address);
  if (!m) throw new CollectiveConfigError(`peer address ${JSON.stringify(address)} must be "host:port"`);
  return { host: m[1], port: Number(m[2]) };
}

/** Checks one allreduce's arguments. */
export function checkAllreduceArgs(data: unknown, tag: AllreduceTag | undefined): void {
  if (!(data instanceof Float32Array)) {
    throw new CollectiveConfigError(
      `allreduce(data) must be a Float32Array, got ${data === null ? 'null' : ((data as object)?.constructor?.name ?? typeof data)}`,
    );
  }
  if (data.length > UINT32_MAX) {
    throw new CollectiveConfigError(`allreduce(data).length (${data.length}) must be < 2^32`);
  }
  if (!tag || !isUint32(tag.epoch) || !isUint32(tag.step)) {
    throw new CollectiveConfigError(
      `allreduce(tag) (${JSON.stringify(tag)}) must be { epoch, step } with integers in [0, 2^32)`,
    );
  }
  const bf16 = tag.bf16Elements;
  if (bf16 !== undefined && (!isUint32(bf16) || bf16 > data.length)) {
    throw new CollectiveConfigError(
      `allreduce(tag).bf16Elements (${bf16}) must be an integer in [0, data.length = ${data.length}]`,
    );
  }
  const span = tag.span;
  if (
    span !== undefined &&
    (!isUint32(span.offset) || !isUint32(span.total) || span.offset + data.length > span.total)
  ) {
    throw new CollectiveConfigError(
      `allreduce(tag).span (${JSON.stringify(span)}) must be { offset, total } with integers in [0, 2^32) and offset + data.length (${data.length}) <= total`,
    );
  }
}
