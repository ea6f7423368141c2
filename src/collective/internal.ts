/**
 * Internals for sibling tests and benchmarks (not part of the public API): the hand-written
 * frame codec, the pure ring schedule, and the fault-injection hook.
 */
export { Staging, WIRE_BYTES, type WireDtypeName } from './bf16.ts';
export { type FaultAction, type FaultInjector, type FrameSite, kFaultInjector } from './faults.ts';
export {
  type ChunkHeader,
  type DecodedChunk,
  type DecodedResponse,
  decodeRequest,
  decodeResponse,
  dtypeName,
  dtypeValue,
  encodeChunkFrame,
  encodeRequest,
  encodeResponse,
  FrameDecodeError,
  FramePool,
  UINT_FIELDS,
} from './frame-codec.ts';
export { RAW_RING_METHOD, type RawClientCall, type RawServerCall } from './peer-server.ts';
export * from './schedule.ts';
