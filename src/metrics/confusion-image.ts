/**
 * The confusion matrix as a PNG for TensorBoard's Images tab: one square per (true, predicted)
 * class pair, white for none and darker blue for a larger share of the true class's test images
 * (rows sum to 1). Encoded here with node:zlib (a PNG is a signature and three CRC-framed chunks),
 * so the rank that records the run needs no image library in its compute thread.
 */
import { deflateSync } from 'node:zlib';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO-HDLC, as PNG chunks use). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** An 8-bit RGB PNG of `width` x `height` pixels from `rgb` (row-major, 3 bytes a pixel). */
export function encodePng(width: number, height: number, rgb: Uint8Array): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  const raw = Buffer.alloc(height * (1 + 3 * width));
  for (let y = 0; y < height; y++) {
    raw[y * (1 + 3 * width)] = 0; // filter: none
    raw.set(rgb.subarray(y * 3 * width, (y + 1) * 3 * width), y * (1 + 3 * width) + 1);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

/** The PNG of a confusion matrix `[true][predicted]` (counts), about 512 px a side at most. */
export function confusionPng(matrix: readonly (readonly number[])[]): {
  png: Buffer;
  width: number;
  height: number;
} {
  const n = matrix.length;
  const cell = Math.max(1, Math.min(32, Math.floor(512 / Math.max(1, n))));
  const size = n * cell;
  const rgb = new Uint8Array(size * size * 3).fill(255);
  for (let t = 0; t < n; t++) {
    const total = matrix[t].reduce((a, b) => a + b, 0);
    for (let p = 0; p < n; p++) {
      const share = total > 0 ? matrix[t][p] / total : 0;
      if (share === 0) continue; // blank: no images of class t predicted as p
      // From a light blue (a few) to a dark blue (all): #deebf7 -> #08306b.
      const colour = [222 + (8 - 222) * share, 235 + (48 - 235) * share, 247 + (107 - 247) * share];
      for (let y = t * cell; y < (t + 1) * cell; y++) {
        for (let x = p * cell; x < (p + 1) * cell; x++) {
          rgb.set(
            colour.map((c) => Math.round(c)),
            (y * size + x) * 3,
          );
        }
      }
    }
  }
  return { png: encodePng(size, size, rgb), width: size, height: size };
}
