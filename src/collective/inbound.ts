/**
 * What a ring makes of one raw message from a neighbour: a chunk of data, or the failure it
 * means (an abort naming its origin, or a protocol error naming the sender). Pure decoding and
 * classification, kept apart from the ring's state machine (ring-allreduce.ts).
 */
import { abortedBy } from './abort.ts';
import { type CollectiveError, describeRank, ProtocolError } from './api.ts';
import type { PeerRef } from './edges.ts';
import { type DecodedChunk, decodeRequest, decodeResponse } from './frame-codec.ts';

/** A message from the upstream neighbour (data connection or call), as seen by rank `self`. */
export function fromUpstream(
  buf: Buffer,
  self: number,
  up: PeerRef,
): { chunk: DecodedChunk; failure?: undefined } | { chunk?: undefined; failure: CollectiveError } {
  let msg: ReturnType<typeof decodeResponse>;
  try {
    msg = decodeResponse(buf);
  } catch (err) {
    const text = `rank ${self}: undecodable frame of ${buf.length} bytes from ${describeRank(up.rank, up.address)}: ${(err as Error).message}`;
    return { failure: new ProtocolError(text, up.rank, up.address, { cause: err }) };
  }
  if (msg.kind === 'abort') return { failure: abortedBy(msg.abort, self) };
  if (msg.kind === 'accept') {
    const text = `rank ${self}: ${describeRank(up.rank, up.address)} sent a second accept`;
    return { failure: new ProtocolError(text, up.rank, up.address) };
  }
  return { chunk: msg.chunk };
}

/** A message from the downstream neighbour: only an abort is legal; either way the ring fails. */
export function fromDownstream(buf: Buffer, self: number, down: PeerRef): CollectiveError {
  try {
    const abort = decodeRequest(buf).abort;
    if (!abort) throw new Error('unexpected second hello');
    return abortedBy(abort, self);
  } catch (err) {
    const text = `rank ${self}: bad request from ${describeRank(down.rank, down.address)}: ${(err as Error).message}`;
    return new ProtocolError(text, down.rank, down.address, { cause: err });
  }
}
