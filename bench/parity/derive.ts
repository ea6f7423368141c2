/**
 * A strong stand-in for `Rng`'s seed and key derivation, for the parity bench only: installs
 * SHA-256 of (parent origin words, key type, key text) as `Rng.fromSeed` and `Rng.prototype.split`,
 * so every derived stream (init, plan, augment) gets state words that no structure of splitmix /
 * FNV could relate. The generator itself (xoshiro128**) is unchanged. If the project's derivation
 * correlated a run's weight draws with its data draws, runs under this derivation would differ in
 * distribution from runs under the shipped one; the bench compares the two over many seeds.
 */
import { createHash } from 'node:crypto';
import { Rng } from '../../src/core/rng.ts';

function wordsOf(data: Buffer): [number, number, number, number] {
  const w: [number, number, number, number] = [
    data.readUInt32LE(0),
    data.readUInt32LE(4),
    data.readUInt32LE(8),
    data.readUInt32LE(12),
  ];
  if ((w[0] | w[1] | w[2] | w[3]) === 0) w[0] = 1;
  return w;
}

/** Root words of a seed under SHA-256 derivation. */
export function sha256Root(seed: number | string): [number, number, number, number] {
  return wordsOf(
    createHash('sha256')
      .update(`bbn-seed:${typeof seed}:${seed}`)
      .digest(),
  );
}

/** Child words of `origin` and `key` under SHA-256 derivation. */
export function sha256Child(
  origin: readonly number[],
  key: string | number,
): [number, number, number, number] {
  const h = createHash('sha256');
  const head = Buffer.alloc(16);
  for (let i = 0; i < 4; i++) head.writeUInt32LE(origin[i] >>> 0, 4 * i);
  h.update(head);
  h.update(`${typeof key}:${key}`);
  return wordsOf(h.digest());
}

/**
 * Replaces `Rng.fromSeed` and `Rng.prototype.split` with the SHA-256 derivation (for this process);
 * returns a function that puts the previous derivation back.
 */
export function installSha256Derivation(): () => void {
  const statics = Rng as unknown as { fromSeed: (seed: number | string) => Rng };
  const prevFromSeed = statics.fromSeed;
  const prevSplit = Rng.prototype.split;
  const make = (w: [number, number, number, number]) => Rng.fromState({ s: w, origin: w });
  (Rng as unknown as { fromSeed: (seed: number | string) => Rng }).fromSeed = (seed) =>
    make(sha256Root(seed));
  Rng.prototype.split = function split(this: Rng, key: string | number): Rng {
    return make(sha256Child(this.state().origin, key));
  };
  return () => {
    statics.fromSeed = prevFromSeed;
    Rng.prototype.split = prevSplit;
  };
}
