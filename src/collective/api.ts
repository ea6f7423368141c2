/**
 * Contracts of the collective layer: the allreduce interface, its options and statistics, and
 * the error family every collective failure is reported through.
 *
 * The collective layer knows nothing about BBN: it sums flat Float32Arrays across the ranks of
 * one generation over gRPC (see proto/bbn/v1/collective.proto for the wire contract).
 */
import type { RunToken } from '../auth/run-token.ts';
import type { CollectiveServer } from './peer-server.ts';

/** Position in training that one allreduce belongs to; every rank passes the same tag. */
export interface AllreduceTag {
  /** Training epoch (unsigned 32-bit integer). */
  readonly epoch: number;
  /** Step within the epoch (unsigned 32-bit integer). */
  readonly step: number;
  /**
   * With `compress: 'bf16'`: how many leading elements of the array are gradients that may travel
   * as bfloat16 (chunks wholly inside this prefix); every other element rides float32, exact.
   * Default 0: nothing is rounded. Every rank passes the same value.
   */
  readonly bf16Elements?: number;
  /**
   * The data is elements [offset, offset + data.length) of a logical array of `total` elements
   * (a piece of a larger allreduce, e.g. one segment of a gradient reduced during the backward
   * pass): it is cut at the logical array's segment boundaries, so each element is summed in the
   * same rank order, and so to the same bits, as in one allreduce of the whole array
   * (schedule.ts). Every rank passes the same span. Default: the data is the whole array.
   */
  readonly span?: Span;
}

/** A piece of a logical array: elements [offset, offset + length of the call's data) of `total`. */
export interface Span {
  readonly offset: number;
  readonly total: number;
}

/** Element type of gradient payloads on the wire. Reduction is always float32. */
export type WireCompression = 'none' | 'bf16';

/**
 * Where chunk data travels: 'grpc' on each edge's Ring call, or 'tcp' on one plain TCP connection
 * per edge beside it (control stays on gRPC; see tcp-edges.ts).
 */
export type RingTransport = 'grpc' | 'tcp';

/** Where a ring's peer server listens when the ring creates its own server. */
export interface ListenAddress {
  /** Interface to bind, e.g. "127.0.0.1" or "0.0.0.0". */
  readonly host: string;
  /** Port to bind; 0 picks a free one (only useful with `CollectiveServer.listen` first). */
  readonly port: number;
}

/** Options of `RingAllreduce.create`. */
export interface RingAllreduceOptions {
  /** Training run id (non-empty); frames of other runs are rejected. */
  readonly runId: string;
  /** Membership generation (uint32); frames of other generations are rejected (fencing). */
  readonly generation: number;
  /** This process's rank, 0 <= rank < worldSize. */
  readonly rank: number;
  /** Number of ranks W >= 1. */
  readonly worldSize: number;
  /** Peer address ("host:port") of every rank, indexed by rank; peers[rank] is this process. */
  readonly peers: readonly string[];
  /**
   * The peer server to serve this ring on (shared by successive rings and generations).
   * When absent the ring starts its own server on `listen`, or on peers[rank], and stops it in
   * `close()`.
   */
  readonly server?: CollectiveServer;
  /** Address for a ring-owned server (ignored when `server` is given). */
  readonly listen?: ListenAddress;
  /** Maximum bytes of float32 data per frame (multiple of 4, 4 B .. 16 MiB); default 4 MiB. */
  readonly chunkBytes?: number;
  /**
   * Progress timeout of one allreduce: if no frame arrives or leaves for this long the
   * allreduce fails with RingTimeoutError on this rank and is aborted on all. It must exceed
   * the largest compute skew between ranks entering the same allreduce. Default 60 000 ms.
   */
  readonly timeoutMs?: number;
  /** Bound on ring set-up (peers may still be starting); default 30 000 ms. */
  readonly connectTimeoutMs?: number;
  /**
   * HTTP/2 keepalive ping interval and timeout on both ends of both ring edges: a neighbour that
   * does not answer a ping within this time (frozen, SIGSTOPped, cut off) is reported as lost, and
   * a rank whose main thread blocks for less than this time keeps its ring. With `server` given
   * it is the server's (`CollectiveServerOptions.keepaliveMs`), and a different value here is a
   * CollectiveConfigError. Default 60 000 ms.
   */
  readonly keepaliveMs?: number;
  /**
   * Wire element type; default 'none' (float32). 'bf16' halves the bytes of the chunks inside
   * each call's `tag.bf16Elements` prefix (the gradients), see `bf16.ts`; the rest stays float32.
   */
  readonly compress?: WireCompression;
  /**
   * Data transport of the ring's edges; all ranks must agree. Default 'tcp' (a quarter of the
   * CPU per byte of 'grpc', docs/performance.md).
   */
  readonly transport?: RingTransport;
  /**
   * Who moves a tcp ring's chunks: 'native' (socket I/O and the reduce in C on a thread of its
   * own, native/ring-plane: gloo's CPU per byte, docs/performance.md), 'js' (the event loop), or
   * 'auto' (default): native where it is built and usable (transport 'tcp', a run id of at most
   * 64 bytes; compress 'none' or 'bf16'), else js. 'native' where these do not hold is a
   * CollectiveConfigError; `RingAllreduce.dataPlane` says which plane a ring got. Both planes put
   * the same bytes on the wire and give bit-identical sums (bf16 included), so ranks may differ.
   */
  readonly dataPlane?: DataPlaneChoice;
  /**
   * The run's token (src/auth/run-token.ts): sent with this rank's call to its upstream
   * neighbour, and checked on every edge of the server the ring starts itself (a shared server
   * checks the token it was started with). Without it the ring is unauthenticated.
   */
  readonly token?: RunToken;
}

/** Who moves a tcp ring's chunks; see `RingAllreduceOptions.dataPlane`. */
export type DataPlaneChoice = 'auto' | 'native' | 'js';

/** Counters of one ring since it was created. */
export interface RingStats {
  /** Completed allreduce calls. */
  readonly allreduces: number;
  /** Frame bytes written to the downstream neighbour (headers included). */
  readonly bytesSent: number;
  /** Frame bytes received from the upstream neighbour (headers included). */
  readonly bytesReceived: number;
  /** Data frames written. */
  readonly framesSent: number;
  /** Data frames received. */
  readonly framesReceived: number;
  /** Wall seconds spent inside completed allreduce calls. */
  readonly seconds: number;
  /** Wall seconds of the last completed allreduce call. */
  readonly lastSeconds: number;
}

/** An in-place sum across the ranks of one generation. */
export interface Allreducer {
  /** This process's rank. */
  readonly rank: number;
  /** Number of ranks. */
  readonly worldSize: number;
  /**
   * Replaces `data` by the element-wise sum of every rank's `data`. Every rank calls it with
   * the same length and tag, in the same order; one call at a time. `data` must not be touched
   * until the promise settles. The result is bit-identical on every rank.
   */
  allreduce(data: Float32Array, tag: AllreduceTag): Promise<void>;
  /** Aborts the in-flight allreduce (and all later ones) on this rank and, through the ring, on every rank. */
  abort(reason: string): void;
  /** Ends the ring's streams and frees its resources; idempotent. */
  close(): Promise<void>;
  /** Counters since creation. */
  stats(): RingStats;
}

/** How a failure is classified on the wire (RingAbort.reason). */
export type AbortKind = 'protocol' | 'peer-lost' | 'timeout' | 'local';

/** Options shared by the collective errors. */
export interface CollectiveErrorOptions {
  /** The underlying error, if any. */
  readonly cause?: unknown;
}

/** Base of every error the collective layer raises. */
export class CollectiveError extends Error {
  override name = 'CollectiveError';
  /** Classification carried to the other ranks when this error aborts a ring. */
  readonly kind: AbortKind = 'local';
  constructor(message: string, options?: CollectiveErrorOptions) {
    super(message, options);
  }
}

/** An invalid option or argument; the message names the field and the bad value. */
export class CollectiveConfigError extends CollectiveError {
  override name = 'CollectiveConfigError';
}

/** A neighbour's stream closed or its connection died (process killed, network cut, frozen). */
export class PeerLostError extends CollectiveError {
  override name = 'PeerLostError';
  override readonly kind: AbortKind = 'peer-lost';
  /** Rank of the lost neighbour. */
  readonly peerRank: number;
  /** Address of the lost neighbour. */
  readonly peerAddress: string;
  constructor(message: string, peerRank: number, peerAddress: string, options?: CollectiveErrorOptions) {
    super(message, options);
    this.peerRank = peerRank;
    this.peerAddress = peerAddress;
  }
}

/** Set-up or an allreduce made no progress in time. */
export class RingTimeoutError extends CollectiveError {
  override name = 'RingTimeoutError';
  override readonly kind: AbortKind = 'timeout';
  /** Ranks this rank was waiting on (never connected, or sent nothing in time). */
  readonly waitingOn: readonly number[];
  constructor(message: string, waitingOn: readonly number[], options?: CollectiveErrorOptions) {
    super(message, options);
    this.waitingOn = waitingOn;
  }
}

/** A neighbour sent something the protocol does not allow; nothing of it was applied after detection. */
export class ProtocolError extends CollectiveError {
  override name = 'ProtocolError';
  override readonly kind: AbortKind = 'protocol';
  /** Rank of the neighbour that sent the offending frame. */
  readonly peerRank: number;
  /** Address of that neighbour. */
  readonly peerAddress: string;
  constructor(message: string, peerRank: number, peerAddress: string, options?: CollectiveErrorOptions) {
    super(message, options);
    this.peerRank = peerRank;
    this.peerAddress = peerAddress;
  }
}

/** A neighbour refused the ring connection (gRPC status other than UNAVAILABLE). */
export class PeerRejectedError extends CollectiveError {
  override name = 'PeerRejectedError';
  /** Rank that refused. */
  readonly peerRank: number;
  /** gRPC status code of the refusal. */
  readonly code: number;
  constructor(message: string, peerRank: number, code: number, options?: CollectiveErrorOptions) {
    super(message, options);
    this.peerRank = peerRank;
    this.code = code;
  }
}

/** Where and why a ring abort started. */
export interface AbortOrigin {
  /** Rank where the first failure was detected. */
  readonly rank: number;
  /** Its address. */
  readonly address: string;
  /** Classification of the first failure. */
  readonly kind: AbortKind;
  /** The origin's description of the first failure. */
  readonly message: string;
}

/**
 * The ring was aborted, by this rank (`abort()`) or by another rank whose failure reached this
 * one as an abort frame. `originRank` is the rank where the first failure happened; on every
 * other rank this error is a consequence of that one.
 */
export class RingAbortedError extends CollectiveError {
  override name = 'RingAbortedError';
  override readonly kind: AbortKind;
  /** Rank where the first failure was detected. */
  readonly originRank: number;
  /** Address of that rank. */
  readonly originAddress: string;
  /** The origin's own description of the first failure (forwarded unchanged around the ring). */
  readonly originMessage: string;
  constructor(message: string, origin: AbortOrigin, options?: CollectiveErrorOptions) {
    super(message, options);
    this.originRank = origin.rank;
    this.originAddress = origin.address;
    this.kind = origin.kind;
    this.originMessage = origin.message;
  }
}

/** Formats "rank R (host:port)" the same way in every message. */
export function describeRank(rank: number, address: string | undefined): string {
  return address ? `rank ${rank} (${address})` : `rank ${rank}`;
}
