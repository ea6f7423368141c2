/**
 * The ring's float32 reduce kernel (simd-add.ts): the WebAssembly SIMD path gives the same bits as
 * the JavaScript loop at every length (blocks, a partial block, a tail below one vector, views at
 * odd element offsets), including infinities, signed zeros and subnormals.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { addFloat32, addFloat32Js, simdAddAvailable } from '../../src/collective/simd-add.ts';
import { Rng } from '../../src/core/rng.ts';

const SPECIALS = [0, -0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e-45, -1e-45, 3.4e38, -3.4e38];

function values(rng: Rng, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = i % 97 === 0 ? SPECIALS[rng.int(SPECIALS.length)] : rng.normal() * 2 ** (rng.int(60) - 30);
  }
  return out;
}

it('adds float32 arrays bit-identically to the JavaScript loop at every length and offset', () => {
  assert.ok(simdAddAvailable(), 'the WebAssembly SIMD kernel did not load (Node 20 has SIMD)');
  const rng = Rng.fromSeed('simd-add');
  for (const n of [0, 1, 3, 4, 63, 64, 65, 8191, 8192, 8193, 20_001, 262_144, 262_147]) {
    for (const offset of [0, 1, 3]) {
      const src = values(rng, n + offset).subarray(offset);
      const base = values(rng, n + offset);
      const want = Float32Array.from(base.subarray(offset));
      addFloat32Js(want, src);
      const got = base.subarray(offset);
      addFloat32(got, src);
      const a = new Uint32Array(got.buffer, got.byteOffset, n);
      const b = new Uint32Array(want.buffer, want.byteOffset, n);
      const at = a.findIndex((v, i) => v !== b[i]);
      assert.equal(at, -1, `n ${n} offset ${offset}: element ${at} is ${got[at]}, loop gives ${want[at]}`);
    }
  }
});
