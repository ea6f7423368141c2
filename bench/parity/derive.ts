/**
 * The seed/key derivation `Rng` shipped with until issue #19 ("legacy"), kept for the parity bench
 * only: `installLegacyDerivation()` swaps it in for `Rng.fromSeed` and `Rng.prototype.split`, so
 * the bench can compare draws from both derivations (docs/parity.md). The generator (xoshiro128**)
 * is the same under both. The shipped derivation is SHA-256 of (parent origin, key); see
 * src/core/rng.ts.
 *
 * Legacy: a seed was hashed to one 32-bit word and expanded to four by a chained splitmix32; a
 * child of origin o and key k was expand([o0 ^ h(k), o1, o2 ^ mix32(h(k)), o3]) with h a 32-bit
 * FNV-1a (strings) or splitmix32 (integers < 2^32) hash of the key.
 */
import { Rng } from '../../src/core/rng.ts';

type Words = [number, number, number, number];

const GOLDEN = 0x9e3779b9;

/** splitmix32 step: a bijective 32-bit mixer. */
export function mix32(x: number): number {
  let z = (x + GOLDEN) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** A key's 32-bit hash: FNV-1a over UTF-16 code units then mixed (strings), mix32(k ^ c) (integers). */
export function legacyHashKey(key: string | number): number {
  if (typeof key === 'number') {
    if (!Number.isInteger(key) || key < 0 || key > 0xffffffff) return legacyHashKey(`n:${key}`);
    return mix32(key ^ 0x5bd1e995);
  }
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return mix32(h >>> 0);
}

function expand(words: readonly number[]): Words {
  let acc = 0x6a09e667;
  const out: number[] = [];
  for (let i = 0; i < 4; i++) {
    acc = mix32(acc ^ (words[i % words.length] >>> 0) ^ Math.imul(i + 1, GOLDEN));
    out.push(acc);
  }
  if ((out[0] | out[1] | out[2] | out[3]) === 0) out[0] = 1;
  return out as Words;
}

/** Root words of a seed under the legacy derivation. */
export function legacyRoot(seed: number | string): Words {
  return expand([legacyHashKey(seed)]);
}

/** Child words of `origin` and `key` under the legacy derivation. */
export function legacyChild(origin: readonly number[], key: string | number): Words {
  const k = legacyHashKey(key);
  return expand([origin[0] ^ k, origin[1], origin[2] ^ mix32(k), origin[3]]);
}

/**
 * Replaces `Rng.fromSeed` and `Rng.prototype.split` with the legacy derivation (for this process);
 * returns a function that puts the shipped one back.
 */
export function installLegacyDerivation(): () => void {
  const statics = Rng as unknown as { fromSeed: (seed: number | string) => Rng };
  const prevFromSeed = statics.fromSeed;
  const prevSplit = Rng.prototype.split;
  const make = (w: Words) => Rng.fromState({ s: w, origin: w });
  statics.fromSeed = (seed) => make(legacyRoot(seed));
  Rng.prototype.split = function split(this: Rng, key: string | number): Rng {
    return make(legacyChild(this.state().origin, key));
  };
  return () => {
    statics.fromSeed = prevFromSeed;
    Rng.prototype.split = prevSplit;
  };
}
