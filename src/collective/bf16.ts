/**
 * Payload kernels: float32 and bfloat16 wire copies of a Float32Array range, and the receive-side
 * add/copy from a (possibly unaligned) payload into the flat array.
 *
 * bfloat16 is the upper half of a binary32, rounded to nearest, ties to even; NaN stays a quiet
 * NaN of the same sign and infinities stay infinite. Only the wire copy is rounded: every add
 * happens in float32.
 */

import { addFloat32 } from './simd-add.ts';

/** Bytes per element on the wire for each dtype. */
export const WIRE_BYTES = { f32: 4, bf16: 2 } as const;

/** Wire element type. */
export type WireDtypeName = keyof typeof WIRE_BYTES;

/** Rounds binary32 bits to the bfloat16 bits (round to nearest even). */
export function f32BitsToBf16(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x0040) & 0xffff; // quiet NaN
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Reusable aligned scratch memory for one ring (payloads arrive at odd offsets and cannot be
 * viewed as typed arrays in place). Grows on demand, never shrinks.
 */
export class Staging {
  /** Backing store; its views below are recreated when it grows. */
  private buffer = new ArrayBuffer(0);
  private f32 = new Float32Array(0);
  private u32 = new Uint32Array(0);
  private u16 = new Uint16Array(0);
  private u8 = new Uint8Array(0);

  private ensure(elements: number): void {
    if (this.f32.length >= elements) return;
    this.buffer = new ArrayBuffer(elements * 4);
    this.f32 = new Float32Array(this.buffer);
    this.u32 = new Uint32Array(this.buffer);
    this.u16 = new Uint16Array(this.buffer);
    this.u8 = new Uint8Array(this.buffer);
  }

  /**
   * Writes `src` (a Float32Array range) into `out` at byte `at` as `dtype`, little-endian.
   * Returns the number of bytes written.
   */
  encode(src: Float32Array, dtype: WireDtypeName, out: Uint8Array, at: number): number {
    if (dtype === 'f32') {
      out.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), at);
      return src.byteLength;
    }
    const n = src.length;
    this.ensure(n);
    const bits = new Uint32Array(src.buffer, src.byteOffset, n);
    const u16 = this.u16;
    for (let i = 0; i < n; i++) u16[i] = f32BitsToBf16(bits[i]);
    out.set(this.u8.subarray(0, n * 2), at);
    return n * 2;
  }

  /** Adds the `dst.length` elements of `payload` (as `dtype`) into `dst`, element by element. */
  addInto(dst: Float32Array, payload: Uint8Array, dtype: WireDtypeName): void {
    addFloat32(dst, this.decode(payload, dtype, dst.length));
  }

  /** Overwrites `dst` with the `dst.length` elements of `payload` (as `dtype`). */
  copyInto(dst: Float32Array, payload: Uint8Array, dtype: WireDtypeName): void {
    if (dtype === 'f32') {
      new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(payload);
      return;
    }
    dst.set(this.decode(payload, dtype, dst.length));
  }

  /** A float32 view of the payload's values: in place when aligned, else in the staging buffer. */
  private decode(payload: Uint8Array, dtype: WireDtypeName, n: number): Float32Array {
    if (dtype === 'f32') {
      if (payload.byteOffset % 4 === 0) return new Float32Array(payload.buffer, payload.byteOffset, n);
      this.ensure(n);
      this.u8.set(payload);
      return this.f32.subarray(0, n);
    }
    // bf16: the upper halves go to 32-bit words; unpack from the end so they do not overlap.
    this.ensure(n);
    this.u8.set(payload);
    const u16 = this.u16;
    const u32 = this.u32;
    for (let i = n - 1; i >= 0; i--) u32[i] = u16[i] << 16;
    return this.f32.subarray(0, n);
  }
}

/** Payload bytes of `n` values whose first `bf16` travel as bfloat16 and the rest as float32. */
export function mixedBytes(n: number, bf16: number): number {
  return bf16 * WIRE_BYTES.bf16 + (n - bf16) * WIRE_BYTES.f32;
}

/** Writes `values` into `out` at `at`: the first `bf16` as bfloat16, then the rest as float32. */
export function encodeMixed(
  staging: Staging,
  values: Float32Array,
  bf16: number,
  out: Uint8Array,
  at: number,
): void {
  let pos = at;
  if (bf16 > 0) pos += staging.encode(values.subarray(0, bf16), 'bf16', out, pos);
  if (bf16 < values.length) staging.encode(values.subarray(bf16), 'f32', out, pos);
}

/** Rounds every element of `data` to the nearest bfloat16 value, in place. */
export function roundToBf16InPlace(data: Float32Array): void {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  for (let i = 0; i < bits.length; i++) bits[i] = f32BitsToBf16(bits[i]) << 16;
}
