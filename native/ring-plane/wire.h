/*
 * The ring's chunk wire (proto/bbn/v1/collective.proto, DATA_TRANSPORT_TCP) for the native data
 * plane: the same bytes as src/collective/frame-codec.ts + tcp-edges.ts, so a native rank and a
 * JavaScript rank share one data connection. Pure functions over bytes, no I/O (wire.c).
 *
 * A chunk message on a data connection is a 5-byte prefix (flag 0, 4-byte big-endian length L)
 * and L bytes of canonical RingResponse{chunk: RingChunk{...}}: fields in number order, zero
 * values omitted, alignment_padding sized so the payload starts 4-byte aligned counting the
 * prefix, payload last. `wire_encode_header` writes everything before the payload.
 *
 * Receiving chunk (t, c) of the receiver's own schedule:
 *   1. exp = wire_encode_header(expected fields) (the bytes a conforming sender writes);
 *   2. read 5 bytes; if they differ from exp[0..5): a different message (abort, bye, another
 *      encoding): read its L bytes (wire_prefix) and go to 4;
 *   3. read exp_len - 5 more bytes; if they equal exp[5..): receive the payload straight into
 *      the array (or a scratch buffer to add from) and the chunk is done;
 *      otherwise read the rest of the L bytes after them and go to 4;
 *   4. wire_classify(message, expected fields): WIRE_MATCH (some other valid encoding of the same
 *      chunk: the payload is at *payload_at) or WIRE_OTHER: hand the whole message to JavaScript
 *      (inbound.ts fromUpstream names the abort or the protocol violation).
 */
#ifndef BBN_WIRE_H
#define BBN_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of the length prefix of every message on a data connection. */
#define WIRE_PREFIX 5

/* Indexes into wire_chunk.v: RingChunk field numbers 2..14, in order. */
enum {
  WIRE_GENERATION,
  WIRE_SENDER_RANK,
  WIRE_SEQUENCE,
  WIRE_EPOCH,
  WIRE_STEP,
  WIRE_PHASE,
  WIRE_PHASE_STEP,
  WIRE_SEGMENT,
  WIRE_CHUNK_INDEX,
  WIRE_OFFSET,
  WIRE_LENGTH,
  WIRE_TOTAL_LENGTH,
  WIRE_DTYPE,
  WIRE_NFIELDS
};

/* Every RingChunk field but the payload (and the meaningless padding). */
typedef struct {
  const uint8_t *run_id; /* UTF-8, not NUL-terminated */
  size_t run_id_len;
  uint32_t v[WIRE_NFIELDS]; /* enums (phase, dtype) must be < 2^31 to encode like uint32 */
} wire_chunk;

/* Upper bound of wire_encode_header's output for a run id of `run_id_len` bytes. */
#define WIRE_HEADER_MAX(run_id_len) (128 + (size_t)(run_id_len))

/*
 * Writes the prefix and every byte of the chunk message before its `payload_bytes` payload bytes
 * (f32: 4 * length) into out[0..cap). Returns the bytes written, a multiple of 4 (the payload
 * follows, aligned), or 0 if cap is too small, payload_bytes is 0 or the message would exceed
 * the prefix's 2^32 - 1 bytes.
 */
size_t wire_encode_header(const wire_chunk *h, uint64_t payload_bytes, uint8_t *out, size_t cap);

/* Reads a prefix: 1 = a message of *len bytes follows, 0 = orderly close (length 0), -1 = flag != 0. */
int wire_prefix(const uint8_t p[WIRE_PREFIX], uint32_t *len);

#define WIRE_OTHER 0
#define WIRE_MATCH 1

/*
 * Classifies one message (the L bytes after the prefix) against the chunk the receiver expects.
 * WIRE_MATCH: it is a valid RingResponse whose one kind is a chunk, every field equal to `want`
 * and a payload of exactly `payload_bytes` bytes, at msg + *payload_at (any alignment). Accepts
 * any valid encoding, as frame-codec.ts's decodeResponse does (any field order, last value wins,
 * unknown fields of wire types 0/1/2/5 skipped, non-minimal varints, run_id UTF-8 checked with a
 * leading BOM dropped). WIRE_OTHER for everything else: an abort, an accept, another chunk,
 * truncated or malformed bytes. Never reads outside msg[0..len).
 */
int wire_classify(const uint8_t *msg, size_t len, const wire_chunk *want, uint64_t payload_bytes,
                  size_t *payload_at);

#endif
