import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { f32BitsToBf16, roundToBf16InPlace } from '../../src/collective/index.ts';
import { Staging } from '../../src/collective/internal.ts';
import { Rng } from '../../src/core/rng.ts';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bitsOf(x: number): number {
  f32[0] = x;
  return u32[0];
}
function fromBits(b: number): number {
  u32[0] = b >>> 0;
  return f32[0];
}
/** The bfloat16 value nearest to x, as a number. */
function bf16(x: number): number {
  return fromBits(f32BitsToBf16(bitsOf(x)) << 16);
}

describe('bf16 wire rounding', () => {
  it('rounds binary32 to the nearest bfloat16, ties to even', () => {
    const table: Array<[number, number]> = [
      [0x3f800000, 0x3f80], // 1.0
      [0x3f808000, 0x3f80], // exactly half way, even stays
      [0x3f818000, 0x3f82], // half way from odd 0x3f81 rounds up to even
      [0x3f808001, 0x3f81], // just above half way
      [0x3f807fff, 0x3f80], // just below half way
      [0x7f7fffff, 0x7f80], // largest finite overflows to +inf
      [0xff800000, 0xff80], // -inf
      [0x00000001, 0x0000], // smallest subnormal rounds to zero
      [0x80000000, 0x8000], // -0
    ];
    for (const [input, want] of table) {
      assert.equal(f32BitsToBf16(input), want, `0x${input.toString(16)}`);
    }
    assert.equal(f32BitsToBf16(0x7fc00001) & 0x7fc0, 0x7fc0, 'NaN stays a quiet NaN');
    assert.equal(f32BitsToBf16(0x7f800001) & 0x7fc0, 0x7fc0, 'a signalling NaN becomes quiet, not inf');
    assert.equal(f32BitsToBf16(0xff800001) >>> 15, 1, 'NaN keeps its sign');
  });

  it('keeps relative error within 2^-8 (half a bf16 ulp) for normal numbers', () => {
    const rng = Rng.fromSeed('bf16-error');
    let worst = 0;
    for (let i = 0; i < 100_000; i++) {
      const x = Math.fround(rng.normal() * 10 ** rng.uniform(-20, 20));
      worst = Math.max(worst, Math.abs(bf16(x) - x) / Math.abs(x));
    }
    assert.ok(worst <= 2 ** -8, `worst relative error ${worst}`);
    assert.ok(worst > 2 ** -9, 'the test should exercise values near the bound');
  });

  it('rounds an array in place to exactly the wire values', () => {
    const data = Float32Array.from([1.00390625, -2.71875, 65504.5, 0]);
    const expected = Array.from(data, bf16);
    roundToBf16InPlace(data);
    assert.deepEqual(Array.from(data), expected);
  });
});

describe('payload staging', () => {
  const rng = Rng.fromSeed('staging');
  const values = Float32Array.from({ length: 1001 }, () => rng.normal());

  for (const dtype of ['f32', 'bf16'] as const) {
    it(`${dtype}: adds and copies payloads at every byte alignment`, () => {
      const staging = new Staging();
      const bytesPer = dtype === 'f32' ? 4 : 2;
      for (let misalign = 0; misalign < 4; misalign++) {
        const wire = new Uint8Array(values.length * bytesPer + misalign);
        const written = staging.encode(values, dtype, wire, misalign);
        assert.equal(written, values.length * bytesPer);
        const payload = wire.subarray(misalign, misalign + written);
        const wireValues = Array.from(values, (v) => (dtype === 'f32' ? v : bf16(v)));

        const copied = new Float32Array(values.length);
        staging.copyInto(copied, payload, dtype);
        assert.deepEqual(Array.from(copied), wireValues, `copy, misalign ${misalign}`);

        const summed = Float32Array.from(values);
        staging.addInto(summed, payload, dtype);
        const want = Array.from(values, (v, i) => Math.fround(v + wireValues[i]));
        assert.deepEqual(Array.from(summed), want, `add, misalign ${misalign}`);
      }
    });
  }
});
