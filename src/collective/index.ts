/**
 * Public API of the collective layer: a ring allreduce over gRPC on flat Float32Arrays, its peer
 * server, and its error family. Knows nothing about BBN.
 *
 * ```ts
 * const server = await CollectiveServer.listen({ host: '0.0.0.0', port: 0 });
 * // ... exchange server.address with the other ranks (the coordinator's Join) ...
 * const ring = await RingAllreduce.create({ runId, generation, rank, worldSize, peers, server });
 * await ring.allreduce(gradients, { epoch, step }); // in-place sum over all ranks
 * await ring.close();
 * ```
 */
export {
  type AbortKind,
  type AbortOrigin,
  type Allreducer,
  type AllreduceTag,
  CollectiveConfigError,
  CollectiveError,
  type CollectiveErrorOptions,
  type ListenAddress,
  PeerLostError,
  PeerRejectedError,
  ProtocolError,
  RingAbortedError,
  type RingAllreduceOptions,
  type RingStats,
  RingTimeoutError,
  type RingTransport,
  type Span,
  type WireCompression,
} from './api.ts';
export { f32BitsToBf16, roundToBf16InPlace } from './bf16.ts';
export { DEFAULT_KEEPALIVE_MS, keepaliveOptions } from './keepalive.ts';
export { CollectiveServer, type CollectiveServerOptions } from './peer-server.ts';
export { RingAllreduce } from './ring-allreduce.ts';
