/**
 * A seeded, splittable pseudo-random generator (xoshiro128**), identical on every machine.
 *
 * Every random decision in the system (samplers, augmentation, initialisation, Beta-α) draws from
 * an `Rng` derived from the run's seed by `split(key)`, so a run is reproducible from its seed and
 * a stream's draws never depend on how many draws another stream made.
 *
 * Derivation (how a seed and a chain of keys become a stream's 128-bit state) is SHA-256, a keyed
 * hash of the whole parent and the whole key, so no two (parent, key) pairs are related by any
 * structure of the hash (docs/parity.md, "The derivation"):
 * - `fromSeed(seed)`: the first 16 bytes of SHA-256 of the UTF-8 text `bbn-seed:<type>:<seed>`
 *   (`<type>` is `number` or `string`, `<seed>` JavaScript's text of the value), read as four
 *   little-endian 32-bit words;
 * - `split(key)`: the first 16 bytes of SHA-256 of the parent's four origin words (16 bytes, little
 *   endian) followed by the UTF-8 text `<type>:<key>`.
 * An all-zero result (which xoshiro cannot start from) becomes [1, 0, 0, 0]. The generator and all
 * draws use only 32-bit integer arithmetic (`Math.imul`, `>>>`), so results are bit-identical
 * across platforms and Node versions. (Until issue #19 the derivation was a splitmix/FNV mix that
 * hashed every key to 32 bits and XORed it into the parent's words; bench/parity/derive.ts keeps
 * it for the comparison.)
 *
 * This module imports `node:crypto`; workflow code (Temporal's sandbox rejects Node built-ins)
 * must not import it: `CoreValueError` lives in errors.ts for that reason.
 */
import { createHash } from 'node:crypto';
import { CoreValueError } from './errors.ts';

export { CoreValueError };

/** Serialisable position of an `Rng`: its four state words and its derivation key. */
export interface RngState {
  /** xoshiro128** state words (unsigned 32-bit). */
  readonly s: readonly [number, number, number, number];
  /** Words the generator was derived from; `split` hashes these with the key, so children do not depend on draws. */
  readonly origin: readonly [number, number, number, number];
}

type Words = [number, number, number, number];

/** The first 16 bytes of a SHA-256 digest as four little-endian words (never all zero). */
function wordsOf(digest: Buffer): Words {
  const w: Words = [
    digest.readUInt32LE(0),
    digest.readUInt32LE(4),
    digest.readUInt32LE(8),
    digest.readUInt32LE(12),
  ];
  // xoshiro must not start from the all-zero state.
  if ((w[0] | w[1] | w[2] | w[3]) === 0) w[0] = 1;
  return w;
}

/** Root state of a seed: SHA-256 of `bbn-seed:<type>:<seed>`. */
function rootWords(seed: number | string): Words {
  return wordsOf(
    createHash('sha256')
      .update(`bbn-seed:${typeof seed}:${seed}`)
      .digest(),
  );
}

/** Child state of `origin` and `key`: SHA-256 of the origin's 16 bytes, then `<type>:<key>`. */
function childWords(origin: readonly number[], key: string | number): Words {
  const head = Buffer.allocUnsafe(16);
  for (let i = 0; i < 4; i++) head.writeUInt32LE(origin[i] >>> 0, 4 * i);
  return wordsOf(
    createHash('sha256')
      .update(head)
      .update(`${typeof key}:${key}`)
      .digest(),
  );
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Seeded generator; create with `Rng.fromSeed`, derive independent streams with `split`. */
export class Rng {
  /** Current xoshiro128** state; advanced by every draw. */
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  /** Derivation words, fixed for the life of the generator (see `RngState.origin`). */
  private readonly origin: [number, number, number, number];

  private constructor(state: readonly number[], origin: readonly number[]) {
    this.s0 = state[0] >>> 0;
    this.s1 = state[1] >>> 0;
    this.s2 = state[2] >>> 0;
    this.s3 = state[3] >>> 0;
    this.origin = [origin[0] >>> 0, origin[1] >>> 0, origin[2] >>> 0, origin[3] >>> 0];
  }

  /** A generator from an integer or string seed. The same seed gives the same stream everywhere. */
  static fromSeed(seed: number | string): Rng {
    const words = rootWords(seed);
    return new Rng(words, words);
  }

  /** Restores a generator saved with `state()`. */
  static fromState(state: RngState): Rng {
    const ok = (w: readonly number[]) =>
      Array.isArray(w) && w.length === 4 && w.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff);
    if (!ok(state?.s) || !ok(state?.origin)) {
      throw new CoreValueError(
        `RngState must hold four unsigned 32-bit words in s and origin, got ${JSON.stringify(state)}`,
      );
    }
    return new Rng(state.s, state.origin);
  }

  /**
   * An independent child stream named by `key`. Depends only on this generator's origin and the
   * key, never on how many numbers were drawn, so `rng.split('epoch').split(3)` is stable.
   */
  split(key: string | number): Rng {
    const words = childWords(this.origin, key);
    return new Rng(words, words);
  }

  /** The generator's position, for checkpoints. */
  state(): RngState {
    return { s: [this.s0, this.s1, this.s2, this.s3], origin: [...this.origin] };
  }

  /** Next unsigned 32-bit integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    this.s0 >>>= 0;
    this.s1 >>>= 0;
    this.s2 >>>= 0;
    this.s3 >>>= 0;
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits (like Python's `random.random()`). */
  random(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n), unbiased (rejection on the top range). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) {
      throw new CoreValueError(`Rng.int(n): n (${n}) must be an integer in [1, 2^32]`);
    }
    if (n === 0x100000000) return this.nextUint32();
    const limit = 0x100000000 - (0x100000000 % n);
    let x = this.nextUint32();
    while (x >= limit) x = this.nextUint32();
    return x % n;
  }

  /** Uniform double in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.random();
  }

  /** Standard normal draw (Box-Muller, one value per two uniforms; no hidden cache, so state() is complete). */
  normal(): number {
    let u = this.random();
    while (u === 0) u = this.random();
    const v = this.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Gamma(shape, 1) draw (Marsaglia-Tsang; shape < 1 by the boost u^(1/shape)). */
  gamma(shape: number): number {
    if (!(shape > 0) || !Number.isFinite(shape)) {
      throw new CoreValueError(`Rng.gamma(shape): shape (${shape}) must be a finite number > 0`);
    }
    if (shape < 1) {
      let u = this.random();
      while (u === 0) u = this.random();
      return this.gamma(shape + 1) * u ** (1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.random();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v;
      if (u > 0 && Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /** Beta(a, b) draw, via two gamma draws. */
  beta(a: number, b: number): number {
    const x = this.gamma(a);
    const y = this.gamma(b);
    const s = x + y;
    // Both gammas can underflow to 0 for tiny shapes; fall back to a fair coin, the Beta(a→0,b→0) limit.
    if (s === 0) return this.random() < a / (a + b) ? 1 : 0;
    return x / s;
  }

  /** Fisher-Yates shuffle in place; returns the same array. */
  shuffle<T extends { length: number; [i: number]: unknown }>(items: T): T {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
    return items;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }
}
