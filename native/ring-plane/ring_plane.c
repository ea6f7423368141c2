/*
 * The ring allreduce's native data plane (issue 16): the chunk traffic of one allreduce, socket
 * I/O and the reduce in C on a thread of its own, so the JavaScript thread does nothing per byte
 * and the CPU per byte is torch gloo's (docs/performance.md). src/collective/native-plane.ts is
 * its only user; ring-allreduce.ts keeps everything else (set-up, control, aborts, close).
 *
 * One plane per rank, over the two data connections JavaScript made (ring-connect.ts: DataListener,
 * BBNT + token) and lends it with `adopt(plane, recvFd, sendFd)`: from upstream rank r-1, to
 * downstream rank r+1. The plane never closes them and never changes their flags (MSG_DONTWAIT
 * on every call). `allreduce` sums a Float32Array in place with src/collective/schedule.ts's
 * schedule: at ring step t rank r sends segment (r-t) mod W and receives segment (r-1-t) mod W,
 * segment boundaries those of schedule.ts's segmentStart (a Span clips the logical array's), steps
 * t < W-1 reduce and later ones copy; each segment is cut into chunks. Every element is summed in
 * the same order as the JavaScript plane sums it, so the results are bit-identical.
 *
 * Sending and receiving overlap, so the ring pipelines: chunk c of step t is sent as soon as
 * chunk c of step t-1 has been received (and added), one poll() loop over both sockets
 * (poll_loop.c). Reduce-step chunks are received into a scratch buffer and added; all-gather
 * chunks are received straight into the array. On a ring with compress 'bf16' each call's
 * `bf16Elements` leading elements travel as bfloat16 (bf16.c, allreduce-op.ts bf16Count): a chunk
 * with any of them is marked WIRE_DTYPE_BF16, encoded into a staging buffer when it is sent, and
 * received into scratch and decoded; the owner of a segment rounds its final sum to bfloat16. Every chunk is a message of the ring's data wire
 * (wire.c: the 5-byte prefix and a canonical RingResponse{chunk}, payload 4-byte aligned) with
 * every field src/collective's schedule gives it. The receiver compares the expected prefix and
 * header bytes, then receives the payload; a message that starts otherwise is read whole and
 * classified (wire_classify): another encoding of the same chunk is used, anything else (an abort,
 * a wrong chunk) fails the allreduce with the message's bytes on the error (`frame`), for
 * JavaScript to decode. The loop also watches the downstream neighbour on the send socket
 * (aborts, the close marker, loss), stops on `cancel(plane)` and fails after `timeoutMs` without
 * progress; every rejection carries `code`, `side`, `peerRank`, `sendBroken` and `recvBroken`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include "plane.h"

/* First element of segment s (schedule.ts segmentStart): the logical array's boundary, clipped to the piece. */
static size_t seg_start(const Op *o, int s) {
  int W = o->p->world;
  if (!o->span_total) return (size_t)(((unsigned __int128)s * o->n) / W);
  size_t at = (size_t)(((unsigned __int128)s * o->span_total) / W);
  if (at <= o->span_offset) return 0;
  return at - o->span_offset < o->n ? at - o->span_offset : o->n;
}
int modi(int a, int m) { return ((a % m) + m) % m; }
static size_t nchunks(const Op *o, int s) {
  size_t len = seg_start(o, s + 1) - seg_start(o, s);
  return (len + o->chunk_elems - 1) / o->chunk_elems;
}

void add_into(float *restrict a, const float *restrict b, size_t k) {
  for (size_t i = 0; i < k; i++) a[i] += b[i];
}

/* Leading elements of the chunk [off, off + len) that travel as bfloat16 (allreduce-op.ts bf16Count). */
static size_t bf16_count(const Op *o, size_t off, size_t len) {
  if (o->bf16 <= off) return 0;
  return o->bf16 - off < len ? o->bf16 - off : len;
}

/* Payload bytes of the chunk [off, off + len) (bf16.ts mixedBytes). */
static size_t payload_bytes(const Op *o, size_t off, size_t len) {
  return len * 4 - bf16_count(o, off, len) * 2;
}

/* ---- the ring ---- */

/* Where chunk c of ring step t lives in the array (sender: send segment; receiver: recv segment). */
static void chunk_at(Op *o, int seg, size_t c, float **ptr, size_t *len) {
  size_t s0 = seg_start(o, seg), s1 = seg_start(o, seg + 1);
  size_t off = s0 + c * o->chunk_elems;
  size_t end = off + o->chunk_elems < s1 ? off + o->chunk_elems : s1;
  *ptr = o->data + off;
  *len = end - off;
}

/* Every field of chunk c of ring step t (segment seg, at ptr, len elements), sent by `sender`. */
static void fields_of(Op *o, wire_chunk *h, int sender, int t, int seg, size_t c, const float *ptr,
                      size_t len) {
  int W = o->p->world;
  uint32_t *v = h->v;
  v[WIRE_GENERATION] = o->p->generation;
  v[WIRE_SENDER_RANK] = (uint32_t)sender;
  v[WIRE_SEQUENCE] = o->p->seq;
  v[WIRE_EPOCH] = o->epoch;
  v[WIRE_STEP] = o->step;
  v[WIRE_PHASE] = t < W - 1 ? 1 : 2; /* RING_PHASE_REDUCE_SCATTER, RING_PHASE_ALL_GATHER */
  v[WIRE_PHASE_STEP] = (uint32_t)(t < W - 1 ? t : t - (W - 1));
  v[WIRE_SEGMENT] = (uint32_t)seg;
  v[WIRE_CHUNK_INDEX] = (uint32_t)c;
  v[WIRE_OFFSET] = (uint32_t)(ptr - o->data);
  v[WIRE_LENGTH] = (uint32_t)len;
  v[WIRE_TOTAL_LENGTH] = (uint32_t)o->n;
  v[WIRE_DTYPE] = bf16_count(o, (size_t)(ptr - o->data), len) > 0 ? 2 : 1; /* WIRE_DTYPE_BF16, WIRE_DTYPE_F32 */
}

/* The chunk message's header (prefix included) for chunk c of ring step t, sent by `sender`. */
static size_t header_of(Op *o, uint8_t *out, int sender, int t, int seg, size_t c, const float *ptr,
                        size_t len) {
  Plane *p = o->p;
  wire_chunk h = {.run_id = p->run_id, .run_id_len = p->run_id_len};
  fields_of(o, &h, sender, t, seg, c, ptr, len);
  return wire_encode_header(&h, payload_bytes(o, (size_t)(ptr - o->data), len), out, HDR_CAP);
}

int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int op_fail(Op *o, const char *code, const char *side, int peer, const char *fmt, ...) {
  if (o->err[0]) return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(o->err, sizeof o->err, fmt, ap);
  va_end(ap);
  o->code = code;
  o->side = side;
  o->peer = peer;
  return -1;
}

/*
 * Receives exactly len bytes of the upstream's message (the fd may be non-blocking); while it
 * waits, cancel() and the progress timeout still end it. 0, or -1 with the failure set.
 */
static int recv_exact(Op *o, uint8_t *b, size_t len) {
  Plane *p = o->p;
  int up = modi(p->rank - 1, p->world);
  int64_t last = now_ms();
  while (len > 0) {
    if (__atomic_load_n(&p->cancel, __ATOMIC_ACQUIRE))
      return op_fail(o, "cancelled", "local", p->rank, "rank %d: allreduce #%u cancelled", p->rank, p->seq);
    ssize_t k = recv(p->recv_fd, b, len, MSG_DONTWAIT);
    if (k > 0) {
      b += k;
      len -= (size_t)k;
      last = now_ms();
      continue;
    }
    if (k == 0)
      return op_fail(o, "lost", "upstream", up,
                     "rank %d: upstream neighbour %s data connection lost (ended without an orderly close) during allreduce #%u",
                     p->rank, p->up_name, p->seq);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return op_fail(o, "lost", "upstream", up, "rank %d: receive from %s: %s", p->rank, p->up_name,
                     strerror(errno));
    int64_t left = last + p->timeout_ms - now_ms();
    if (left <= 0)
      return op_fail(o, "timeout", "upstream", up,
                     "rank %d: allreduce #%u made no progress for %d ms (timeoutMs %d): no rest of a message "
                     "from %s",
                     p->rank, p->seq, (int)(now_ms() - last), p->timeout_ms, p->up_name);
    struct pollfd pf[2] = {{.fd = p->recv_fd, .events = POLLIN}, {.fd = p->wake_fd, .events = POLLIN}};
    poll(pf, 2, (int)left);
  }
  return 0;
}

/*
 * The receiver's message did not start like the expected chunk k: reads the rest of it (k->got
 * holds its first k->at >= 5 bytes, prefix included) and classifies it. Another encoding of the
 * expected chunk has its payload copied to `dst` (landing()) and returns 0; anything else returns
 * -1 with the failure set and the message's bytes in o->other (none for the orderly close).
 */
int other_message(Op *o, const Cursor *k, uint8_t *dst) {
  Plane *p = o->p;
  const uint8_t *got = k->got;
  size_t have = k->at, c = k->c;
  int t = k->t;
  int W = p->world, up = modi(p->rank - 1, W);
  uint32_t mlen;
  int kind = wire_prefix(got, &mlen);
  if (kind == 0) {
    o->recv_clean = have == WIRE_PREFIX; /* the marker was read whole */
    return op_fail(o, "closed", "upstream", up,
                   "rank %d: upstream neighbour %s closed its data connection (orderly close) during "
                   "allreduce #%u, at step %d, chunk %zu",
                   p->rank, p->up_name, p->seq, t, c);
  }
  if (kind < 0)
    return op_fail(o, "protocol", "upstream", up,
                   "rank %d: %s sent a message with a nonzero flag (%u) at step %d, chunk %zu", p->rank,
                   p->up_name, got[0], t, c);
  uint64_t limit = (uint64_t)o->chunk_elems * 4 + OTHER_EXTRA; /* the JavaScript plane's maxMessage */
  if (mlen > limit || mlen < have - WIRE_PREFIX)
    return op_fail(o, "protocol", "upstream", up,
                   "rank %d: %s sent an oversize frame during allreduce #%u (data message of %u bytes, limit %llu)",
                   p->rank, p->up_name, p->seq, mlen, (unsigned long long)limit);
  uint8_t *msg = malloc(mlen);
  if (!msg) return op_fail(o, "error", "local", p->rank, "rank %d: out of memory", p->rank);
  memcpy(msg, got + WIRE_PREFIX, have - WIRE_PREFIX);
  if (recv_exact(o, msg + have - WIRE_PREFIX, mlen - (have - WIRE_PREFIX)) != 0) {
    free(msg);
    return -1;
  }
  wire_chunk h = {.run_id = p->run_id, .run_id_len = p->run_id_len};
  fields_of(o, &h, up, t, k->seg, c, k->ptr, k->len);
  size_t at;
  if (wire_classify(msg, mlen, &h, k->bytes, &at) == WIRE_MATCH) {
    o->applied_len = mlen;
    memcpy(dst, msg + at, k->bytes); /* any alignment */
    free(msg);
    return 0;
  }
  o->recv_clean = 1;
  op_fail(o, "frame", "upstream", up,
          "rank %d: a message of %u bytes from %s is not the expected chunk (allreduce #%u, step %d, "
          "chunk %zu); see error.frame",
          p->rank, mlen, p->up_name, p->seq, t, c);
  o->other = msg;
  o->other_len = mlen;
  return -1;
}

/* ---- the cursors of the poll loop (poll_loop.c) ---- */


uint8_t *landing(Op *o, const Cursor *k) {
  return k->t < o->p->world - 1 || k->k16 ? (uint8_t *)o->p->scratch : (uint8_t *)k->ptr;
}

void chunk_received(Op *o, const Cursor *k) {
  int W = o->p->world;
  if (k->k16)
    bf16_apply(k->ptr, (const uint8_t *)o->p->scratch, k->len, k->k16, k->t < W - 1, k->t == W - 2);
  else if (k->t < W - 1)
    add_into(k->ptr, o->p->scratch, k->len);
}

void cursor_setup(Op *o, Cursor *k, int sending) {
  int W = o->p->world, r = o->p->rank;
  while (k->t < o->steps) {
    int seg = sending ? modi(r - k->t, W) : modi(r - 1 - k->t, W);
    k->nc = nchunks(o, seg);
    if (k->c < k->nc) {
      chunk_at(o, seg, k->c, &k->ptr, &k->len);
      k->k16 = bf16_count(o, (size_t)(k->ptr - o->data), k->len);
      k->bytes = k->len * 4 - k->k16 * 2;
      k->src = k->k16 ? o->p->stage : (const uint8_t *)k->ptr;
      k->staged = 0;
      k->at = 0;
      k->have = 1;
      k->seg = seg;
      k->hlen = header_of(o, k->hdr, sending ? r : modi(r - 1, W), k->t, seg, k->c, k->ptr, k->len);
      return;
    }
    k->t++;
    k->c = 0;
  }
  k->have = 0;
}

void cursor_next(Op *o, Cursor *k, int sending) {
  if (sending) {
    o->frames_sent++;
    o->bytes_sent += (double)(k->hlen + k->bytes);
  } else {
    o->frames_received++;
    o->bytes_received += (double)(k->hlen - WIRE_PREFIX + k->bytes); /* the message, as JavaScript counts it */
  }
  k->c++;
  k->frame++;
  cursor_setup(o, k, sending);
}

/* ---- N-API ---- */

#define CHECK(env, call)                                                     \
  do {                                                                       \
    if ((call) != napi_ok) {                                                 \
      napi_throw_error((env), NULL, "ring_plane: N-API call failed: " #call); \
      return NULL;                                                           \
    }                                                                        \
  } while (0)

static void plane_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Plane *p = data;
  /* Only at the environment's teardown (an allreduce holds a reference to the plane otherwise):
   * its thread still reads the plane, so it is left to the exiting process. */
  if (p->busy) return;
  if (p->wake_fd >= 0) close(p->wake_fd);
  free(p->scratch);
  free(p->stage);
  free(p);
}

/* A plane without sockets; its run id (at most RUN_ID_MAX bytes of UTF-8), generation and timeout from argv[i..i+3). */
static Plane *plane_new(napi_env env, int rank, int world, size_t argc, napi_value *argv, size_t i) {
  Plane *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->rank = rank;
  p->world = world;
  p->send_fd = p->recv_fd = -1;
  p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  size_t id_len = RUN_ID_MAX + 1;
  int ok = argc >= i + 3 && napi_get_value_string_utf8(env, argv[i], NULL, 0, &id_len) == napi_ok &&
           id_len <= RUN_ID_MAX && napi_get_value_uint32(env, argv[i + 1], &p->generation) == napi_ok &&
           napi_get_value_int32(env, argv[i + 2], &p->timeout_ms) == napi_ok;
  if (ok) {
    char id[RUN_ID_MAX + 1];
    napi_get_value_string_utf8(env, argv[i], id, sizeof id, &p->run_id_len);
    memcpy(p->run_id, id, p->run_id_len);
  }
  if (!ok || p->wake_fd < 0 || p->timeout_ms <= 0 || world < 1 || rank < 0 || rank >= world) {
    plane_finalize(env, p, NULL);
    return NULL;
  }
  return p;
}

static Plane *get_plane(napi_env env, napi_value v) {
  Plane *p = NULL;
  if (napi_get_value_external(env, v, (void **)&p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "ring_plane: not a plane");
    return NULL;
  }
  return p;
}

/* Makes *buf (64-byte aligned) hold at least `need` bytes; 0, or -1 out of memory (*buf gone). */
static int grow(void **buf, size_t *have, size_t need) {
  if (*have >= need) return 0;
  free(*buf);
  *buf = NULL;
  *have = 0;
  if (posix_memalign(buf, 64, need) != 0) {
    *buf = NULL;
    return -1;
  }
  *have = need;
  return 0;
}

/* The allreduce, on its own thread (see op_thread). */
static void op_execute(Op *o) {
  Plane *p = o->p;
  int W = p->world;
  o->steps = 2 * (W - 1);
  o->recv_start = calloc((size_t)o->steps + 1, sizeof(size_t));
  if (!o->recv_start) {
    op_fail(o, "error", "local", p->rank, "rank %d: out of memory", p->rank);
    return;
  }
  for (int t = 0; t < o->steps; t++)
    o->recv_start[t + 1] = o->recv_start[t] + nchunks(o, modi(p->rank - 1 - t, W));
  if (grow((void **)&p->scratch, &p->scratch_bytes, o->chunk_elems * 4) != 0 ||
      (o->bf16 && grow((void **)&p->stage, &p->stage_bytes, o->chunk_elems * 4) != 0)) {
    op_fail(o, "error", "local", p->rank, "rank %d: out of memory", p->rank);
    return;
  }
  if (W == 1) return;
  run_poll(o);
}

/*
 * A thread of the allreduce's own, not a libuv pool thread: an allreduce waits on its neighbours
 * for as long as they compute, and several ranks of one process (tests) or file I/O would
 * otherwise starve each other of the pool's four threads. It ends by handing the op back to the
 * JavaScript thread (op_complete) through a thread-safe function.
 */
static void *op_thread(void *data) {
  Op *o = data;
  napi_threadsafe_function done = o->done; /* op_complete frees o, maybe before the call returns */
  op_execute(o);
  napi_call_threadsafe_function(done, o, napi_tsfn_blocking);
  napi_release_threadsafe_function(done, napi_tsfn_release);
  return NULL;
}

static void set_str(napi_env env, napi_value obj, const char *key, const char *s) {
  napi_value v;
  if (napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v) == napi_ok) napi_set_named_property(env, obj, key, v);
}

static void set_int(napi_env env, napi_value obj, const char *key, int n) {
  napi_value v;
  if (napi_create_int32(env, n, &v) == napi_ok) napi_set_named_property(env, obj, key, v);
}

static void set_num(napi_env env, napi_value obj, const char *key, double n) {
  napi_value v;
  if (napi_create_double(env, n, &v) == napi_ok) napi_set_named_property(env, obj, key, v);
}

static void set_bool(napi_env env, napi_value obj, const char *key, int b) {
  napi_value v;
  if (napi_get_boolean(env, b != 0, &v) == napi_ok) napi_set_named_property(env, obj, key, v);
}

/* On the JavaScript thread: settles the allreduce's promise and frees the op. */
static void op_complete(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)js_cb;
  (void)context;
  Op *o = data;
  Plane *p = o->p;
  p->busy = 0;
  /* A cancel() of this allreduce is spent: the next one starts clean. */
  __atomic_store_n(&p->cancel, 0, __ATOMIC_RELEASE);
  uint64_t drain;
  while (read(p->wake_fd, &drain, sizeof drain) > 0) {
  }
  if (env) { /* NULL when the environment is being torn down: nothing to settle */
    napi_value v;
    if (o->err[0]) {
      napi_value m;
      napi_create_string_utf8(env, o->err, NAPI_AUTO_LENGTH, &m);
      napi_create_error(env, NULL, m, &v);
      set_str(env, v, "code", o->code ? o->code : "error");
      set_str(env, v, "side", o->side ? o->side : "local");
      set_int(env, v, "peerRank", o->code ? o->peer : p->rank);
      set_bool(env, v, "sendBroken", o->send_broken);
      set_bool(env, v, "recvBroken", o->recv_broken);
      set_num(env, v, "received", o->frames_received);
      if (o->other) {
        napi_value frame;
        void *copy;
        if (napi_create_buffer_copy(env, o->other_len, o->other, &copy, &frame) == napi_ok)
          napi_set_named_property(env, v, "frame", frame);
      }
      napi_reject_deferred(env, o->deferred, v);
    } else {
      napi_create_object(env, &v);
      set_num(env, v, "framesSent", o->frames_sent);
      set_num(env, v, "bytesSent", o->bytes_sent);
      set_num(env, v, "framesReceived", o->frames_received);
      set_num(env, v, "bytesReceived", o->bytes_received);
      napi_resolve_deferred(env, o->deferred, v);
    }
    napi_delete_reference(env, o->array_ref);
    napi_delete_reference(env, o->plane_ref);
  }
  free(o->recv_start);
  free(o->other);
  free(o);
}

/*
 * allreduce(plane, float32array, chunkBytes, epoch, step, sequence, spanOffset = 0, spanTotal = 0,
 * bf16Elements = 0) -> Promise<{framesSent, bytesSent, framesReceived, bytesReceived}>. epoch, step
 * and sequence go on every chunk (the ring's allreduce number: the plane keeps none of its own);
 * spanTotal > 0 says the array is elements [spanOffset, spanOffset + length) of a logical array of
 * spanTotal (schedule.ts Span); the array's first bf16Elements elements travel as bfloat16 (a ring
 * with compress 'bf16'; 0: all float32). A rejection carries code ('cancelled', 'timeout', 'frame', 'closed', 'lost',
 * 'protocol', 'error'), side ('upstream', 'downstream', 'local'), peerRank, sendBroken and
 * recvBroken (a stream left inside a message: destroy it, write nothing), and `frame` (a Buffer,
 * code 'frame') with the message the upstream (inbound.ts fromUpstream) or downstream
 * (fromDownstream) neighbour sent. The array must not be touched until the promise settles.
 */
static napi_value js_allreduce(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Plane *p = get_plane(env, argv[0]);
  if (!p) return NULL;
  napi_typedarray_type type;
  size_t len, off;
  void *base;
  napi_value ab;
  if (argc < 6 || napi_get_typedarray_info(env, argv[1], &type, &len, &base, &ab, &off) != napi_ok ||
      type != napi_float32_array) {
    napi_throw_type_error(env, NULL, "ring_plane: allreduce(plane, Float32Array, chunkBytes, epoch, step, sequence)");
    return NULL;
  }
  int32_t chunk_bytes;
  uint32_t epoch, step, seq;
  double span_offset = 0, span_total = 0, bf16 = 0;
  CHECK(env, napi_get_value_int32(env, argv[2], &chunk_bytes));
  CHECK(env, napi_get_value_uint32(env, argv[3], &epoch));
  CHECK(env, napi_get_value_uint32(env, argv[4], &step));
  CHECK(env, napi_get_value_uint32(env, argv[5], &seq));
  if (argc > 7) {
    CHECK(env, napi_get_value_double(env, argv[6], &span_offset));
    CHECK(env, napi_get_value_double(env, argv[7], &span_total));
  }
  if (argc > 8) CHECK(env, napi_get_value_double(env, argv[8], &bf16));
  if (chunk_bytes < 4 || chunk_bytes % 4 != 0 || len > UINT32_MAX || span_offset < 0 || span_total < 0 ||
      (span_total > 0 && span_offset + (double)len > span_total) || !(bf16 >= 0 && bf16 <= (double)len) ||
      bf16 != (double)(size_t)bf16 || p->send_fd < 0 || p->recv_fd < 0 || p->busy) {
    napi_throw_error(env, NULL,
                     "ring_plane: bad chunk size, span or bf16Elements, plane not connected, or an allreduce in flight");
    return NULL;
  }
  Op *o = calloc(1, sizeof *o);
  if (!o) {
    napi_throw_error(env, NULL, "ring_plane: out of memory");
    return NULL;
  }
  o->p = p;
  o->data = base; /* napi_get_typedarray_info's data already includes the byte offset */
  o->n = len;
  o->chunk_elems = (size_t)chunk_bytes / 4;
  o->epoch = epoch;
  o->step = step;
  o->span_offset = (size_t)span_offset;
  o->span_total = (size_t)span_total;
  o->bf16 = (size_t)bf16;
  p->seq = seq;
  napi_value promise, name;
  CHECK(env, napi_create_promise(env, &o->deferred, &promise));
  CHECK(env, napi_create_reference(env, argv[1], 1, &o->array_ref));
  CHECK(env, napi_create_reference(env, argv[0], 1, &o->plane_ref));
  CHECK(env, napi_create_string_utf8(env, "ring_plane.allreduce", NAPI_AUTO_LENGTH, &name));
  CHECK(env, napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, NULL, op_complete, &o->done));
  pthread_attr_t attr;
  pthread_t th;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int e = pthread_create(&th, &attr, op_thread, o);
  pthread_attr_destroy(&attr);
  if (e != 0) {
    napi_release_threadsafe_function(o->done, napi_tsfn_abort);
    napi_delete_reference(env, o->array_ref);
    napi_delete_reference(env, o->plane_ref);
    free(o);
    char msg[120];
    snprintf(msg, sizeof msg, "ring_plane: cannot start the allreduce thread: %s", strerror(e));
    napi_throw_error(env, NULL, msg);
    return NULL;
  }
  p->busy = 1;
  return promise;
}

/* close(plane): forgets the sockets (JavaScript owns and closes them) and closes the eventfd; the memory goes with the external's finalizer. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Plane *p = get_plane(env, argv[0]);
  if (!p) return NULL;
  if (p->busy) {
    napi_throw_error(env, NULL, "ring_plane: close during an allreduce");
    return NULL;
  }
  p->send_fd = p->recv_fd = -1;
  if (p->wake_fd >= 0) close(p->wake_fd); /* now, not at garbage collection */
  p->wake_fd = -1;
  return NULL;
}

/*
 * create(rank, world, runId, generation, timeoutMs, upName, downName) -> plane: a plane for
 * sockets JavaScript connected (adopt). upName and downName describe the neighbours in messages.
 */
static napi_value js_create(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t rank, world;
  CHECK(env, napi_get_value_int32(env, argv[0], &rank));
  CHECK(env, napi_get_value_int32(env, argv[1], &world));
  Plane *p = plane_new(env, rank, world, argc, argv, 2);
  if (!p) {
    napi_throw_error(env, NULL, "ring_plane: bad rank, world size, run id or timeout, or no eventfd");
    return NULL;
  }
  size_t n = 0;
  if (argc > 6) {
    napi_get_value_string_utf8(env, argv[5], p->up_name, sizeof p->up_name, &n);
    napi_get_value_string_utf8(env, argv[6], p->down_name, sizeof p->down_name, &n);
  }
  napi_value ext;
  CHECK(env, napi_create_external(env, p, plane_finalize, NULL, &ext));
  return ext;
}

/*
 * adopt(plane, recvFd, sendFd): the plane uses two connected TCP sockets that JavaScript made and
 * keeps owning (the descriptors of its net.Sockets). The plane never closes them, never changes
 * their flags (libuv's O_NONBLOCK stays) and writes only chunk frames on sendFd. JavaScript must
 * stop libuv reading both (handle.readStop()) and write nothing on them while an allreduce runs.
 */
static napi_value js_adopt(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Plane *p = get_plane(env, argv[0]);
  if (!p) return NULL;
  int32_t fds[2];
  CHECK(env, napi_get_value_int32(env, argv[1], &fds[0]));
  CHECK(env, napi_get_value_int32(env, argv[2], &fds[1]));
  if (p->busy) {
    napi_throw_error(env, NULL, "ring_plane: adopt during an allreduce");
    return NULL;
  }
  for (int i = 0; i < 2; i++) {
    int type = 0;
    socklen_t tl = sizeof type;
    if (fds[i] < 0 || getsockopt(fds[i], SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_STREAM) {
      char msg[120];
      snprintf(msg, sizeof msg, "ring_plane: adopt: descriptor %d is not a stream socket", fds[i]);
      napi_throw_error(env, NULL, msg);
      return NULL;
    }
  }
  p->recv_fd = fds[0];
  p->send_fd = fds[1];
  return NULL;
}

/*
 * cancel(plane) -> whether an allreduce was in flight: it rejects with code 'cancelled' as soon as
 * its loop wakes (an eventfd in its poll), after finishing the frame it was sending (see
 * poll_loop.c), or resolves if it had already ended; a no-op when nothing runs.
 */
static napi_value js_cancel(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Plane *p = get_plane(env, argv[0]);
  if (!p) return NULL;
  if (p->busy) {
    __atomic_store_n(&p->cancel, 1, __ATOMIC_RELEASE);
    uint64_t one = 1;
    if (write(p->wake_fd, &one, sizeof one) != sizeof one) {
      /* the counter is already nonzero: the loop wakes anyway */
    }
  }
  CHECK(env, napi_get_boolean(env, p->busy != 0, &out));
  return out;
}

/* wire_napi.c: the chunk wire's test entry points (wire.c). */
void wire_napi_define(napi_env env, napi_value exports);

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor d[] = {
      {"allreduce", NULL, js_allreduce, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"create", NULL, js_create, NULL, NULL, NULL, napi_default, NULL},
      {"adopt", NULL, js_adopt, NULL, NULL, NULL, napi_default, NULL},
      {"cancel", NULL, js_cancel, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof d / sizeof d[0], d);
  wire_napi_define(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
