/** Parameter layout conversion between this project (conv HWIO, linear [in, out]) and PyTorch (OIHW, [out, in]). */
import type { LayoutEntry } from '../../src/model/api.ts';

/** A tensor of a flat buffer in PyTorch layout: conv [k,k,cin,cout] → [cout,cin,k,k]; linear [in,out] → [out,in]. */
export function toTorchLayout(e: LayoutEntry, flat: Float32Array): Float32Array {
  const src = flat.subarray(e.offset, e.offset + e.size);
  const out = new Float32Array(e.size);
  if (e.shape.length === 4) {
    const [kh, kw, ci, co] = e.shape;
    for (let y = 0; y < kh; y++)
      for (let x = 0; x < kw; x++)
        for (let i = 0; i < ci; i++)
          for (let o = 0; o < co; o++)
            out[((o * ci + i) * kh + y) * kw + x] = src[((y * kw + x) * ci + i) * co + o];
  } else if (e.shape.length === 2) {
    const [fi, fo] = e.shape;
    for (let i = 0; i < fi; i++) for (let o = 0; o < fo; o++) out[o * fi + i] = src[i * fo + o];
  } else {
    out.set(src);
  }
  return out;
}

/** The PyTorch shape of a layout entry. */
export function torchShape(e: LayoutEntry): number[] {
  if (e.shape.length === 4) return [e.shape[3], e.shape[2], e.shape[0], e.shape[1]];
  if (e.shape.length === 2) return [e.shape[1], e.shape[0]];
  return [...e.shape];
}
