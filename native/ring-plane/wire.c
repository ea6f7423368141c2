/*
 * The ring's chunk wire in C (see wire.h): an encoder byte-identical to frame-codec.ts's
 * planChunkFrame + writeChunkHeader behind tcp-edges.ts's 5-byte prefix, and a classifier that
 * decodes any valid RingResponse encoding the way frame-codec.ts's decodeResponse does, so the
 * native plane accepts exactly the chunks the JavaScript ring accepts and hands everything else
 * (aborts, protocol violations) to JavaScript. Checked byte for byte against the TypeScript and
 * the generated protobuf code by wire-check.ts.
 */
#include "wire.h"

#include <string.h>

#define CHUNK_FIELD 2  /* RingResponse.chunk */
#define PADDING_FIELD 15
#define PAYLOAD_FIELD 16
#define MAX_MESSAGE 0xffffffffu /* the prefix's 4-byte length */

static size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static uint8_t *put_varint(uint8_t *o, uint64_t v) {
  while (v >= 0x80) {
    *o++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *o++ = (uint8_t)v;
  return o;
}

/* Bytes of the whole message (after the prefix) with `pad` padding bytes; frame-codec's layout. */
static uint64_t message_bytes(uint64_t fixed, uint64_t pad, uint64_t payload, uint64_t *inner) {
  uint64_t pad_field = pad > 0 ? 1 + varint_size(pad) + pad : 0;
  *inner = fixed + pad_field + 2 + varint_size(payload) + payload;
  return 1 + varint_size(*inner) + *inner;
}

size_t wire_encode_header(const wire_chunk *h, uint64_t payload_bytes, uint8_t *out, size_t cap) {
  if (payload_bytes == 0 || payload_bytes > MAX_MESSAGE) return 0;
  uint64_t fixed = 0;
  if (h->run_id_len > 0) fixed += 1 + varint_size(h->run_id_len) + h->run_id_len;
  for (int i = 0; i < WIRE_NFIELDS; i++)
    if (h->v[i] != 0) fixed += 1 + varint_size(h->v[i]);
  /* The smallest padding (0..8 bytes) that puts the payload at a multiple of 4, prefix counted. */
  uint64_t pad = 0, inner = 0, total = 0;
  for (uint64_t k = 0; k <= 8; k++) {
    total = message_bytes(fixed, k, payload_bytes, &inner);
    if ((WIRE_PREFIX + total - payload_bytes) % 4 == 0) {
      pad = k;
      break;
    }
  }
  total = message_bytes(fixed, pad, payload_bytes, &inner);
  uint64_t head = WIRE_PREFIX + total - payload_bytes;
  if (total > MAX_MESSAGE || head > cap) return 0;
  uint8_t *o = out;
  *o++ = 0;
  *o++ = (uint8_t)(total >> 24);
  *o++ = (uint8_t)(total >> 16);
  *o++ = (uint8_t)(total >> 8);
  *o++ = (uint8_t)total;
  *o++ = (CHUNK_FIELD << 3) | 2;
  o = put_varint(o, inner);
  if (h->run_id_len > 0) {
    *o++ = (1 << 3) | 2;
    o = put_varint(o, h->run_id_len);
    memcpy(o, h->run_id, h->run_id_len);
    o += h->run_id_len;
  }
  for (int i = 0; i < WIRE_NFIELDS; i++) {
    if (h->v[i] == 0) continue;
    *o++ = (uint8_t)((i + 2) << 3);
    o = put_varint(o, h->v[i]);
  }
  if (pad > 0) {
    *o++ = (PADDING_FIELD << 3) | 2;
    o = put_varint(o, pad);
    memset(o, 0, pad);
    o += pad;
  }
  *o++ = (PAYLOAD_FIELD << 3) | 2 | 0x80; /* tag 130: a two-byte varint */
  *o++ = 0x01;
  o = put_varint(o, payload_bytes);
  return (size_t)(o - out);
}

int wire_prefix(const uint8_t p[WIRE_PREFIX], uint32_t *len) {
  *len = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
  if (p[0] != 0) return -1;
  return *len == 0 ? 0 : 1;
}

/* ---- decoding: a cursor with bounds checks; every failure makes the message WIRE_OTHER ---- */

typedef struct {
  const uint8_t *b;
  size_t pos, end;
  int bad;
} Reader;

/* A varint's low 32 bits, as frame-codec's Reader.uint32 (at most 10 bytes). */
static uint32_t rd_uint32(Reader *r) {
  uint64_t v = 0;
  for (int i = 0; i < 10; i++) {
    if (r->pos >= r->end) break;
    uint8_t b = r->b[r->pos++];
    if (i < 5) v |= (uint64_t)(b & 0x7f) << (7 * i);
    if (b < 0x80) return (uint32_t)v;
  }
  r->bad = 1;
  return 0;
}

/* A length-delimited field: its start in *s, its length returned; moves past it. */
static size_t rd_bytes(Reader *r, size_t *s) {
  uint32_t len = rd_uint32(r);
  if (r->bad || len > r->end - r->pos) {
    r->bad = 1;
    return 0;
  }
  *s = r->pos;
  r->pos += len;
  return len;
}

static void rd_skip(Reader *r, uint32_t wt) {
  size_t s, n = 0;
  if (wt == 0) {
    rd_uint32(r);
    return;
  }
  if (wt == 2) {
    rd_bytes(r, &s);
    return;
  }
  if (wt == 1) n = 8;
  else if (wt == 5) n = 4;
  else r->bad = 1; /* groups (3, 4) and 6, 7: frame-codec rejects them */
  if (r->bad || r->end - r->pos < n) {
    r->bad = 1;
    return;
  }
  r->pos += n;
}

/* Whether b[0..n) is UTF-8 that TextDecoder('utf-8', {fatal: true}) accepts (WHATWG). */
static int utf8_ok(const uint8_t *b, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = b[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    int more;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) more = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      more = 2;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      more = 3;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else return 0;
    if (n - i - 1 < (size_t)more) return 0;
    if (b[i + 1] < lo || b[i + 1] > hi) return 0;
    for (int k = 2; k <= more; k++)
      if (b[i + k] < 0x80 || b[i + k] > 0xbf) return 0;
    i += 1 + (size_t)more;
  }
  return 1;
}

/* decodeChunk over r, compared with `want`; the payload's start (message-relative) in *at. */
static int chunk_matches(Reader *r, const wire_chunk *want, uint64_t payload_bytes, size_t *at) {
  uint32_t v[WIRE_NFIELDS] = {0};
  size_t id_s = 0, id_n = 0, pay_s = 0, pay_n = 0, s, n;
  while (r->pos < r->end) {
    uint32_t tag = rd_uint32(r);
    if (r->bad) return 0;
    uint32_t field = tag >> 3, wt = tag & 7;
    if (field == 1) {
      if (wt != 2) return 0;
      n = rd_bytes(r, &s);
      if (r->bad || !utf8_ok(r->b + s, n)) return 0;
      /* TextDecoder drops one leading byte order mark */
      if (n >= 3 && r->b[s] == 0xef && r->b[s + 1] == 0xbb && r->b[s + 2] == 0xbf) {
        s += 3;
        n -= 3;
      }
      id_s = s;
      id_n = n;
    } else if (field >= 2 && field <= 14) {
      if (wt != 0) return 0;
      v[field - 2] = rd_uint32(r);
    } else if (field == PAYLOAD_FIELD || field == PADDING_FIELD) {
      if (wt != 2) return 0;
      n = rd_bytes(r, &s);
      if (field == PAYLOAD_FIELD) {
        pay_s = s;
        pay_n = n;
      }
    } else if (field == 0) {
      return 0;
    } else {
      rd_skip(r, wt);
    }
    if (r->bad) return 0;
  }
  if (id_n != want->run_id_len || (id_n > 0 && memcmp(r->b + id_s, want->run_id, id_n) != 0)) return 0;
  if (memcmp(v, want->v, sizeof v) != 0 || pay_n != payload_bytes) return 0;
  *at = pay_s;
  return 1;
}

int wire_classify(const uint8_t *msg, size_t len, const wire_chunk *want, uint64_t payload_bytes,
                  size_t *payload_at) {
  Reader r = {msg, 0, len, 0};
  int kinds = 0, match = 0;
  size_t at = 0;
  while (r.pos < r.end) {
    uint32_t tag = rd_uint32(&r);
    if (r.bad) return WIRE_OTHER;
    uint32_t field = tag >> 3, wt = tag & 7;
    if (field >= 1 && field <= 3) {
      if (wt != 2) return WIRE_OTHER;
      size_t s, n = rd_bytes(&r, &s);
      if (r.bad) return WIRE_OTHER;
      kinds++;
      if (field != CHUNK_FIELD) return WIRE_OTHER; /* accept or abort: JavaScript's business */
      Reader c = {msg, s, s + n, 0};
      if (!chunk_matches(&c, want, payload_bytes, &at)) return WIRE_OTHER;
      match = 1;
    } else if (field == 0) {
      return WIRE_OTHER;
    } else {
      rd_skip(&r, wt);
      if (r.bad) return WIRE_OTHER;
    }
  }
  if (kinds != 1 || !match) return WIRE_OTHER;
  *payload_at = at;
  return WIRE_MATCH;
}
