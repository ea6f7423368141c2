/**
 * The ring's float32 reduce kernel (simd-add.ts): the WebAssembly SIMD path gives the same bits as
 * the JavaScript loop at every length (blocks, a partial block, a tail below one vector, views at
 * odd element offsets), including infinities, signed zeros and subnormals; also when the source
 * lies in a receive buffer inside a kernel's own memory (`kernelBuffer`), which is added in place.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { addFloat32, addFloat32Js, kernelBuffer, simdAddAvailable } from '../../src/collective/simd-add.ts';
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

it('adds a source read into a kernel buffer in place, bit-identically, leaving the source unchanged', () => {
  const rng = Rng.fromSeed('simd-add-kernel-buffer');
  const maxN = 262_147 + 3;
  const receive = kernelBuffer(maxN * 4);
  assert.ok(
    !(receive.buffer instanceof SharedArrayBuffer) && receive.buffer.byteLength > receive.byteLength,
    'the receive buffer is not inside a kernel memory (behind its scratch block)',
  );
  for (const n of [0, 1, 3, 4, 63, 64, 65, 8191, 8192, 8193, 20_001, 262_144, 262_147]) {
    for (const offset of [0, 1, 3]) {
      const src: Float32Array = new Float32Array(
        receive.buffer as ArrayBuffer,
        receive.byteOffset + offset * 4,
        n,
      );
      src.set(values(rng, n));
      const srcBefore = Uint32Array.from(new Uint32Array(src.buffer, src.byteOffset, n));
      const got = values(rng, n);
      const want = Float32Array.from(got);
      addFloat32Js(want, src);
      addFloat32(got, src);
      const a = new Uint32Array(got.buffer, got.byteOffset, n);
      const b = new Uint32Array(want.buffer, want.byteOffset, n);
      const at = a.findIndex((v, i) => v !== b[i]);
      assert.equal(at, -1, `n ${n} offset ${offset}: element ${at} is ${got[at]}, loop gives ${want[at]}`);
      const after: Uint32Array = new Uint32Array(src.buffer as ArrayBuffer, src.byteOffset, n);
      assert.equal(
        after.findIndex((v: number, i: number) => v !== srcBefore[i]),
        -1,
        `n ${n} offset ${offset}: the source changed`,
      );
    }
  }
});
