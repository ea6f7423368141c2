/**
 * TFRecord framing, the container of TensorBoard event files:
 *
 *   uint64 length (little endian) | uint32 masked CRC32C(length bytes) | data | uint32 masked CRC32C(data)
 *
 * CRC32C is Castagnoli (polynomial 0x82F63B78, reflected); the mask is TensorFlow's
 * `((crc >>> 15) | (crc << 17)) + 0xa282ead8`.
 */

/** A record whose length or checksum does not match: names the file offset. */
export class TfRecordError extends Error {
  constructor(
    readonly offset: number,
    message: string,
  ) {
    super(`TFRecord at byte ${offset}: ${message}`);
    this.name = 'TfRecordError';
  }
}

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC32C (Castagnoli) of `bytes`. */
export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TensorFlow's masked CRC, so a CRC of data that itself holds CRCs is not degenerate. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One framed record. */
export function frameRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(8 + 4 + data.length + 4);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

/** Splits a TFRecord file into its records, verifying both CRCs of each. */
export function readRecords(file: Uint8Array): Uint8Array[] {
  const buf = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < buf.length) {
    if (at + 12 > buf.length) throw new TfRecordError(at, 'truncated header');
    const length = Number(buf.readBigUInt64LE(at));
    if (buf.readUInt32LE(at + 8) !== maskedCrc32c(buf.subarray(at, at + 8))) {
      throw new TfRecordError(at, 'length CRC mismatch');
    }
    const end = at + 12 + length;
    if (end + 4 > buf.length) throw new TfRecordError(at, `truncated record of ${length} bytes`);
    const data = buf.subarray(at + 12, end);
    if (buf.readUInt32LE(end) !== maskedCrc32c(data)) throw new TfRecordError(at, 'data CRC mismatch');
    out.push(data);
    at = end + 4;
  }
  return out;
}
