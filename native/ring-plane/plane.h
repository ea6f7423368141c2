/*
 * The native ring plane's shared state (ring_plane.c: the schedule, the chunk path and the N-API
 * functions; poll_loop.c: the one-thread poll() loop with the downstream watch, cancel and the
 * progress timeout; bf16.c: payloads with bfloat16 elements). See ring_plane.c's comment and
 * src/collective/native-plane.ts.
 */
#ifndef BBN_PLANE_H
#define BBN_PLANE_H

#include <node_api.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#define RUN_ID_MAX 64
/* A neighbour's description in messages (api.ts describeRank: "rank 3 (10.0.0.7:29500)"). */
#define NAME_MAX_BYTES 160
#define HDR_CAP WIRE_HEADER_MAX(RUN_ID_MAX)
/* Bytes a message may have beyond the largest chunk payload (options.ts FRAME_HEADER_ALLOWANCE). */
#define OTHER_EXTRA 65536
/* Largest message read from the downstream neighbour (tcp-edges.ts TcpDataOut's reader: 64 KiB). */
#define DOWN_MAX 65536
/* How long a failed allreduce keeps sending the frame it is in the middle of (ring-allreduce.ts CLOSE_GRACE_MS). */
#define SETTLE_MS 1000

typedef struct {
  int rank, world;
  int send_fd, recv_fd; /* adopted from JavaScript: never closed here, flags never changed */
  int wake_fd;      /* eventfd: cancel() wakes the poll loop */
  int cancel;       /* set by cancel() (JavaScript thread), read by the loop (atomics) */
  int timeout_ms;   /* no progress on either socket for this long fails the allreduce */
  uint32_t seq;     /* the allreduce in flight (the ring's sequence number, from allreduce()) */
  char up_name[NAME_MAX_BYTES], down_name[NAME_MAX_BYTES]; /* the neighbours, as messages name them */
  uint8_t run_id[RUN_ID_MAX];
  size_t run_id_len;
  uint32_t generation;
  int busy;
  float *scratch;  /* a received payload that is added, or decoded from bfloat16 */
  size_t scratch_bytes;
  uint8_t *stage; /* the payload being sent when it has bfloat16 elements (encoded from the array) */
  size_t stage_bytes;
} Plane;

typedef struct {
  Plane *p;
  napi_threadsafe_function done; /* completes the promise on the JavaScript thread */
  napi_deferred deferred;
  napi_ref array_ref;
  napi_ref plane_ref; /* the plane's external stays alive (no finalizer) while the op runs */
  float *data;
  size_t n;
  size_t chunk_elems;
  /* The data is elements [span_offset, span_offset + n) of a logical array of span_total
   * (schedule.ts Span); span_total 0: the whole array. */
  size_t span_offset, span_total;
  /* Elements [0, bf16) travel as bfloat16 (allreduce-op.ts bf16Count): 0 on a ring without compress. */
  size_t bf16;
  /* Frames and bytes (prefix, header and payload) sent and received, for the ring's stats. */
  double frames_sent, bytes_sent, frames_received, bytes_received;
  char err[240];
  /* A failure, for JavaScript: code ('cancelled', 'timeout', 'frame', 'closed', 'lost', 'protocol',
   * 'error'), the side it came from or waited on, that neighbour's rank. */
  const char *code;
  const char *side;
  int peer;
  int send_broken, recv_broken; /* a stream left in the middle of a message: JavaScript must destroy it */
  int recv_clean;               /* the failing message from upstream was read whole */
  uint32_t epoch, step;         /* the caller's tag, on every chunk */
  uint8_t *other;               /* a message that is not the expected chunk, handed to JavaScript */
  size_t applied_len;           /* the length of a chunk received in another encoding (counters) */
  size_t other_len;
  /* schedule */
  int steps;
  size_t *recv_start; /* frame index of the first chunk received at step t; [steps] = total */
} Op;

typedef struct {
  int t;
  size_t c, nc; /* chunk index and chunk count of step t */
  size_t frame; /* flat frame index */
  size_t at;    /* bytes of header + payload done */
  float *ptr;
  size_t len;          /* elements of the chunk */
  size_t k16;          /* its first k16 elements travel as bfloat16 */
  size_t bytes;        /* payload bytes: 2 * k16 + 4 * (len - k16) */
  const uint8_t *src;  /* sender: the payload (the array, or p->stage once encoded) */
  int staged;          /* sender: p->stage holds this frame's payload */
  int seg;
  uint8_t hdr[HDR_CAP]; /* the header sent, or the header expected */
  size_t hlen;
  uint8_t got[HDR_CAP]; /* receiver: the header bytes received */
  int have;             /* current frame set up */
} Cursor;

int modi(int a, int m);
void add_into(float *restrict a, const float *restrict b, size_t k);
void cursor_setup(Op *o, Cursor *k, int sending);
void cursor_next(Op *o, Cursor *k, int sending);
/* Sets the failure (the first one wins) and returns -1. */
int op_fail(Op *o, const char *code, const char *side, int peer, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int other_message(Op *o, const Cursor *k, uint8_t *dst);
/* Where the payload of the receiver's current chunk is received: the array, or p->scratch. */
uint8_t *landing(Op *o, const Cursor *k);
/* Applies the receiver's current chunk, received at landing(): add, decode, the owner's rounding. */
void chunk_received(Op *o, const Cursor *k);
/* bf16.c: the payload of a chunk with bfloat16 elements (bf16.ts encodeMixed, addInto, copyInto). */
void bf16_encode(uint8_t *restrict out, const float *restrict src, size_t len, size_t k);
void bf16_apply(float *restrict dst, const uint8_t *restrict pay, size_t len, size_t k, int reduce, int owner);
int64_t now_ms(void);
int run_poll(Op *o);

#endif
