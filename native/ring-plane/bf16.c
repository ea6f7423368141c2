/*
 * The payload of a chunk with bfloat16 on the wire (a ring with compress 'bf16'), in C: the same
 * bits as src/collective/bf16.ts, so a native rank and a JavaScript rank share a ring and every
 * rank ends with the JavaScript plane's sums. A chunk's first k elements (those inside the call's
 * bf16Elements prefix) travel as bfloat16, the rest as float32 (encodeMixed); the receiver adds
 * (reduce steps) or copies (all-gather) every element in float32 (Staging.addInto, copyInto), and
 * the segment's owner rounds its final sum to bfloat16 (roundToBf16InPlace) so that every rank
 * ends bit-identical.
 *
 * Values are moved as bits (memcpy, never a float load and store), so NaN payloads survive a copy
 * as they do in JavaScript's typed-array copies. Little-endian only (the wire is little-endian;
 * the plane is written for x86-64 and arm64 Linux).
 */
#include <string.h>

#include "plane.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the ring plane sends values in host byte order: little-endian only"
#endif

/* bf16.ts f32BitsToBf16: round to nearest even; a NaN stays a quiet NaN of the same sign. */
static inline uint16_t f32_bits_to_bf16(uint32_t bits) {
  if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x0040u);
  return (uint16_t)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

void bf16_encode(uint8_t *restrict out, const float *restrict src, size_t len, size_t k) {
  for (size_t i = 0; i < k; i++) {
    uint32_t bits;
    memcpy(&bits, src + i, 4);
    uint16_t h = f32_bits_to_bf16(bits);
    memcpy(out + 2 * i, &h, 2);
  }
  memcpy(out + 2 * k, src + k, (len - k) * 4);
}

void bf16_apply(float *restrict dst, const uint8_t *restrict pay, size_t len, size_t k, int reduce,
                int owner) {
  const uint8_t *tail = pay + 2 * k; /* 2-byte aligned only when k is odd */
  if (reduce) {
    for (size_t i = 0; i < k; i++) {
      uint16_t h;
      memcpy(&h, pay + 2 * i, 2);
      uint32_t bits = (uint32_t)h << 16;
      float v;
      memcpy(&v, &bits, 4);
      dst[i] += v;
    }
    for (size_t i = k; i < len; i++) {
      float v;
      memcpy(&v, tail + 4 * (i - k), 4);
      dst[i] += v;
    }
    if (owner) {
      for (size_t i = 0; i < k; i++) {
        uint32_t bits;
        memcpy(&bits, dst + i, 4);
        bits = (uint32_t)f32_bits_to_bf16(bits) << 16;
        memcpy(dst + i, &bits, 4);
      }
    }
    return;
  }
  for (size_t i = 0; i < k; i++) {
    uint16_t h;
    memcpy(&h, pay + 2 * i, 2);
    uint32_t bits = (uint32_t)h << 16;
    memcpy(dst + i, &bits, 4);
  }
  memcpy(dst + k, tail, (len - k) * 4);
}
