/**
 * The wire module's test entry points (native/ring-plane/wire.c through wire_napi.c), which the
 * shipped addon exports beside the ring plane: their type, and the addon as wire-check.ts sees it.
 * The addon is loaded by src/collective/native-plane.ts's `ringPlaneAddon()` (one loader: the same
 * path, and `BBN_RING_PLANE_ADDON` for another build such as wire-check-asan.sh's). Bench only.
 */
import type { ChunkHeader } from '../../../src/collective/frame-codec.ts';
import { ringPlaneAddon } from '../../../src/collective/native-plane.ts';

/** The wire module's test entry points (wire.c through wire_napi.c). */
export interface Wire {
  encodeChunkHeader(h: ChunkHeader, payloadBytes?: number): Buffer;
  classify(message: Buffer, h: ChunkHeader, payloadBytes?: number): 'match' | 'other';
  payloadAt(message: Buffer, h: ChunkHeader, payloadBytes?: number): number;
  prefix(five: Buffer): number;
}

/** The addon's wire entry points; exits 2 with one line when the addon is not built. */
export function wireAddon(): Wire {
  const addon = ringPlaneAddon();
  if (typeof addon === 'string') {
    console.error(addon);
    process.exit(2);
  }
  return addon as unknown as Wire;
}
