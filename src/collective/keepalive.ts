/**
 * The one keepalive setting of the ring's edges, as the gRPC options both ends use.
 *
 * Both ends of every ring edge ping: the caller's channel (edges.ts) and the peer server
 * (peer-server.ts). Each sends an HTTP/2 PING every `ms` and drops the connection when the answer
 * takes longer than `ms`, so a neighbour that is frozen or cut off is reported lost within 2 * ms,
 * while a rank whose main thread is busy for less than `ms` (a synchronous compute step: its
 * event loop cannot answer a ping) keeps its ring, whatever the phase of the pings: a ping sent at
 * the start of a block of length b < ms is answered at its end, before its deadline. Both ends
 * must use the same value: a shorter one on either end decides (the defect this module fixes was
 * the server's 5 s beside the client's 60 s).
 */
import type { ChannelOptions } from '@grpc/grpc-js';
import { CollectiveConfigError } from './api.ts';

/**
 * Shipped keepalive: longer than any compute step that blocks a rank's main thread (a BBN step on
 * a CPU takes seconds), short enough that a frozen peer is found within two minutes; a killed
 * peer is found at once (its sockets close).
 */
export const DEFAULT_KEEPALIVE_MS = 60_000;

/** Checks a keepalive option (`field` names it in the message). */
export function checkKeepalive(field: string, ms: unknown): number {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 1 || ms > 2 ** 31 - 1) {
    throw new CollectiveConfigError(`${field} (${String(ms)}) must be a number of ms in [1, 2^31)`);
  }
  return Math.round(ms);
}

/**
 * gRPC options carrying keepalive `ms` for either end of a ring edge. The ping-abuse limits are
 * set so that neither end would refuse the other's pings (a GOAWAY "too_many_pings"): each end
 * pings every `ms` and accepts pings down to every ms/2, with or without data in flight. grpc-js
 * 1.14 enforces no such limit itself; the limits are declared for gRPC C-core peers and for a
 * later grpc-js that honours them.
 */
export function keepaliveOptions(ms: number): ChannelOptions {
  return {
    'grpc.keepalive_time_ms': ms,
    'grpc.keepalive_timeout_ms': ms,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_time_between_pings_ms': ms,
    'grpc.http2.min_ping_interval_without_data_ms': Math.max(1, Math.floor(ms / 2)),
    'grpc.http2.max_pings_without_data': 0,
    'grpc.http2.max_ping_strikes': 0,
  };
}
