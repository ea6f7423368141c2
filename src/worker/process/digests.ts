/** Digests a rank sends the coordinator: of its weights (replica check) and of its config (join check). */
import { createHash } from 'node:crypto';
import type { RunConfig } from '../../core/config.ts';

/** SHA-256 of a Float32Array's bytes (the replica checksum of the flat parameters). */
export function paramsDigest(params: Float32Array): Uint8Array {
  return createHash('sha256')
    .update(new Uint8Array(params.buffer, params.byteOffset, params.byteLength))
    .digest();
}

/** Digest of the resolved config; every rank of a run must send the same one. */
export function configDigest(cfg: RunConfig): string {
  return createHash('sha256').update(JSON.stringify(cfg)).digest('hex');
}
