/**
 * The digest of a rank's weights: what the replica check compares every few steps
 * (src/worker/replica-check.ts) and the workflow after every epoch (the `digest` command).
 */
import { createHash } from 'node:crypto';

/** SHA-256 of a Float32Array's bytes (the replica checksum of the flat parameters). */
export function paramsDigest(params: Float32Array): Uint8Array {
  return createHash('sha256')
    .update(new Uint8Array(params.buffer, params.byteOffset, params.byteLength))
    .digest();
}
