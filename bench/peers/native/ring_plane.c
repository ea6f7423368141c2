/*
 * A native data plane for the ring allreduce, as a benchmark prototype (issue 16): socket I/O and
 * the reduce in C, off the JavaScript thread, to measure whether it brings the ring's CPU per byte
 * down to torch gloo's. Not part of src/ and not built in CI (bench/peers/native/build.sh).
 *
 * One plane per rank: a TCP connection to the downstream rank (r+1, sends) and one from the
 * upstream rank (r-1, receives), kept open across allreduces. `allreduce(plane, f32, chunkBytes)`
 * sums a Float32Array in place across the ring with src/collective/schedule.ts's schedule: at
 * ring step t rank r sends segment (r-t) mod W and receives segment (r-1-t) mod W, segment s =
 * [floor(s*n/W), floor((s+1)*n/W)), steps t < W-1 reduce and later ones copy; each segment is cut
 * into chunks. It runs on a libuv pool thread (napi async work) and returns a Promise.
 *
 * Sending and receiving overlap, so the ring pipelines: chunk c of step t is sent as soon as
 * chunk c of step t-1 has been received (and added). Two modes:
 *   poll:    one thread, both sockets non-blocking, poll() on both.
 *   threads: the pool thread sends (blocking), a second thread receives with MSG_WAITALL.
 * Reduce-step chunks are received into a scratch buffer and added; all-gather chunks are received
 * straight into the array. Every chunk is a message of the ring's own data-connection wire
 * (wire.c: the 5-byte prefix and a canonical RingResponse{chunk}, payload 4-byte aligned), with
 * every field of src/collective's schedule (run id and generation from listen, epoch and step
 * from allreduce). The receiver compares the expected prefix and header bytes, then receives the
 * payload; a message that starts otherwise is read whole and classified (wire_classify): another
 * encoding of the same chunk is used, anything else (an abort, a wrong chunk) fails the allreduce
 * with the message's bytes on the error (`frame`), for JavaScript to decode.
 *
 * Two ways to get the sockets: `listen` + `connect` + `accept` (the plane makes and owns them; the
 * benchmark kind), or `create` + `adopt(plane, recvFd, sendFd)`: JavaScript makes the data
 * connections as src/collective does (BBNT + token), stops reading them and lends their
 * descriptors; the plane never closes them and never changes their flags (js-sockets.ts,
 * handover-check.ts). In poll mode (poll_loop.c) the plane also watches the downstream neighbour
 * on the send socket (aborts, the close marker, loss), stops on `cancel(plane)` and fails after
 * `timeoutMs` without progress; every rejection carries `code`, `side`, `peerRank`, `sendBroken`
 * and `recvBroken` (downstream-check.ts). Threads mode (a measured variant) has neither the
 * downstream watch nor cancel, and adopted planes always run in poll mode.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <node_api.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include "plane.h"

static size_t seg_start(size_t n, int W, int s) { return (size_t)(((unsigned __int128)s * n) / W); }
int modi(int a, int m) { return ((a % m) + m) % m; }
static size_t nchunks(size_t n, int W, int s, size_t ce) {
  size_t len = seg_start(n, W, s + 1) - seg_start(n, W, s);
  return (len + ce - 1) / ce;
}

void add_into(float *restrict a, const float *restrict b, size_t k) {
  for (size_t i = 0; i < k; i++) a[i] += b[i];
}

static void set_opts(Plane *p, int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (p->sockbuf > 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &p->sockbuf, sizeof p->sockbuf);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &p->sockbuf, sizeof p->sockbuf);
  }
}

/* ---- the ring, shared by both modes ---- */

/* Where chunk c of ring step t lives in the array (sender: send segment; receiver: recv segment). */
static void chunk_at(Op *o, int seg, size_t c, float **ptr, size_t *len) {
  size_t s0 = seg_start(o->n, o->p->world, seg), s1 = seg_start(o->n, o->p->world, seg + 1);
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
  v[WIRE_DTYPE] = 1; /* WIRE_DTYPE_F32 */
}

/* The chunk message's header (prefix included) for chunk c of ring step t, sent by `sender`. */
static size_t header_of(Op *o, uint8_t *out, int sender, int t, int seg, size_t c, const float *ptr,
                        size_t len) {
  Plane *p = o->p;
  wire_chunk h = {.run_id = p->run_id, .run_id_len = p->run_id_len};
  fields_of(o, &h, sender, t, seg, c, ptr, len);
  return wire_encode_header(&h, len * 4, out, HDR_CAP);
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
                     "rank %d: upstream neighbour rank %d data connection lost (ended without an orderly close) during allreduce #%u",
                     p->rank, up, p->seq);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return op_fail(o, "lost", "upstream", up, "rank %d: receive from rank %d: %s", p->rank, up,
                     strerror(errno));
    int64_t left = last + p->timeout_ms - now_ms();
    if (left <= 0)
      return op_fail(o, "timeout", "upstream", up,
                     "rank %d: allreduce #%u made no progress for %d ms (timeoutMs %d): no rest of a message "
                     "from rank %d",
                     p->rank, p->seq, (int)(now_ms() - last), p->timeout_ms, up);
    struct pollfd pf[2] = {{.fd = p->recv_fd, .events = POLLIN}, {.fd = p->wake_fd, .events = POLLIN}};
    poll(pf, 2, (int)left);
  }
  return 0;
}

/*
 * The message did not start like the expected chunk: reads the rest of it (got holds its first
 * `have` >= 5 bytes, prefix included) and classifies it. Another encoding of the expected chunk
 * is applied (added or copied) and returns 0; anything else returns -1 with the failure set and
 * the message's bytes in o->other (none for the orderly close).
 */
int other_message(Op *o, const uint8_t *got, size_t have, int t, int seg, size_t c, float *ptr,
                  size_t len) {
  Plane *p = o->p;
  int W = p->world, up = modi(p->rank - 1, W);
  uint32_t mlen;
  int kind = wire_prefix(got, &mlen);
  if (kind == 0) {
    o->recv_clean = have == WIRE_PREFIX; /* the marker was read whole */
    return op_fail(o, "closed", "upstream", up,
                   "rank %d: upstream neighbour rank %d closed its data connection (orderly close) during "
                   "allreduce #%u, at step %d, chunk %zu",
                   p->rank, up, p->seq, t, c);
  }
  if (kind < 0)
    return op_fail(o, "protocol", "upstream", up,
                   "rank %d: rank %d sent a message with a nonzero flag (%u) at step %d, chunk %zu", p->rank,
                   up, got[0], t, c);
  uint8_t exp[HDR_CAP];
  size_t elen = header_of(o, exp, up, t, seg, c, ptr, len);
  uint64_t limit = (uint64_t)(elen - WIRE_PREFIX) + len * 4 + OTHER_EXTRA;
  if (mlen > limit || mlen < have - WIRE_PREFIX)
    return op_fail(o, "protocol", "upstream", up, "rank %d: message of %u bytes from rank %d, limit %llu",
                   p->rank, mlen, up, (unsigned long long)limit);
  uint8_t *msg = malloc(mlen);
  if (!msg) return op_fail(o, "error", "local", p->rank, "rank %d: out of memory", p->rank);
  memcpy(msg, got + WIRE_PREFIX, have - WIRE_PREFIX);
  if (recv_exact(o, msg + have - WIRE_PREFIX, mlen - (have - WIRE_PREFIX)) != 0) {
    free(msg);
    return -1;
  }
  wire_chunk h = {.run_id = p->run_id, .run_id_len = p->run_id_len};
  fields_of(o, &h, up, t, seg, c, ptr, len);
  size_t at;
  if (wire_classify(msg, mlen, &h, len * 4, &at) == WIRE_MATCH) {
    if (t < W - 1) {
      memcpy(p->scratch, msg + at, len * 4); /* any alignment */
      add_into(ptr, p->scratch, len);
    } else {
      memcpy(ptr, msg + at, len * 4);
    }
    free(msg);
    return 0;
  }
  o->recv_clean = 1;
  op_fail(o, "frame", "upstream", up,
          "rank %d: a message of %u bytes from rank %d is not the expected chunk (allreduce #%u, step %d, "
          "chunk %zu); see error.frame",
          p->rank, mlen, up, p->seq, t, c);
  o->other = msg;
  o->other_len = mlen;
  return -1;
}

/* ---- poll mode ---- */


void cursor_setup(Op *o, Cursor *k, int sending) {
  int W = o->p->world, r = o->p->rank;
  while (k->t < o->steps) {
    int seg = sending ? modi(r - k->t, W) : modi(r - 1 - k->t, W);
    k->nc = nchunks(o->n, W, seg, o->chunk_elems);
    if (k->c < k->nc) {
      size_t len;
      chunk_at(o, seg, k->c, &k->ptr, &len);
      k->bytes = len * 4;
      k->at = 0;
      k->have = 1;
      k->seg = seg;
      k->hlen = header_of(o, k->hdr, sending ? r : modi(r - 1, W), k->t, seg, k->c, k->ptr, len);
      return;
    }
    k->t++;
    k->c = 0;
  }
  k->have = 0;
}

void cursor_next(Op *o, Cursor *k, int sending) {
  k->c++;
  k->frame++;
  cursor_setup(o, k, sending);
}

/* ---- threads mode ---- */

static int recv_all(int fd, void *buf, size_t len) {
  char *b = buf;
  while (len > 0) {
    ssize_t k = recv(fd, b, len, MSG_WAITALL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return k == 0 ? -2 : -1;
    b += k;
    len -= (size_t)k;
  }
  return 0;
}

static void *receiver(void *arg) {
  Op *o = arg;
  Plane *p = o->p;
  int W = p->world;
  Cursor r = {0};
  cursor_setup(o, &r, 0);
  while (r.have) {
    int reduce = r.t < W - 1;
    int e = recv_all(p->recv_fd, r.got, WIRE_PREFIX), applied = 0;
    size_t have = WIRE_PREFIX;
    if (e == 0 && memcmp(r.got, r.hdr, WIRE_PREFIX) == 0) {
      e = recv_all(p->recv_fd, r.got + WIRE_PREFIX, r.hlen - WIRE_PREFIX);
      have = r.hlen;
    }
    if (e == 0 && memcmp(r.got, r.hdr, have) != 0) {
      if (other_message(o, r.got, have, r.t, r.seg, r.c, r.ptr, r.bytes / 4) != 0) e = -3;
      applied = 1;
    }
    if (e == 0 && !applied) e = recv_all(p->recv_fd, reduce ? p->scratch : r.ptr, r.bytes);
    if (applied) reduce = 0;
    if (e != 0) {
      if (e != -3)
        snprintf(o->err, sizeof o->err, "rank %d: receive from rank %d: %s", p->rank,
                 modi(p->rank - 1, W), e == -2 ? "connection closed" : strerror(errno));
      pthread_mutex_lock(&o->mu);
      o->recv_failed = 1;
      pthread_cond_signal(&o->cv);
      pthread_mutex_unlock(&o->mu);
      return NULL;
    }
    if (reduce) add_into(r.ptr, p->scratch, r.bytes / 4);
    cursor_next(o, &r, 0);
    pthread_mutex_lock(&o->mu);
    o->recv_done = r.frame;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
  }
  return NULL;
}

static int run_threads(Op *o) {
  Plane *p = o->p;
  pthread_t th;
  pthread_mutex_init(&o->mu, NULL);
  pthread_cond_init(&o->cv, NULL);
  o->recv_done = 0;
  o->recv_failed = 0;
  if (pthread_create(&th, NULL, receiver, o) != 0) {
    snprintf(o->err, sizeof o->err, "rank %d: cannot start the receive thread", p->rank);
    return -1;
  }
  Cursor s = {0};
  cursor_setup(o, &s, 1);
  int rc = 0;
  while (s.have) {
    if (s.t > 0) {
      size_t need = o->recv_start[s.t - 1] + s.c + 1;
      pthread_mutex_lock(&o->mu);
      while (o->recv_done < need && !o->recv_failed) pthread_cond_wait(&o->cv, &o->mu);
      int failed = o->recv_failed;
      pthread_mutex_unlock(&o->mu);
      if (failed) {
        rc = -1;
        break;
      }
    }
    while (s.at < s.hlen + s.bytes) {
      struct iovec iov[2];
      int nv = 0;
      if (s.at < s.hlen) iov[nv++] = (struct iovec){(char *)s.hdr + s.at, s.hlen - s.at};
      size_t pay = s.at < s.hlen ? 0 : s.at - s.hlen;
      iov[nv++] = (struct iovec){(char *)s.ptr + pay, s.bytes - pay};
      struct msghdr mh = {.msg_iov = iov, .msg_iovlen = nv};
      ssize_t k = sendmsg(p->send_fd, &mh, MSG_NOSIGNAL);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) {
        snprintf(o->err, sizeof o->err, "rank %d: send to rank %d: %s", p->rank,
                 (p->rank + 1) % p->world, strerror(errno));
        rc = -1;
        break;
      }
      s.at += (size_t)k;
    }
    if (rc) break;
    cursor_next(o, &s, 1);
  }
  /* A send failure leaves the receiver blocked: shut the receiving side so it returns. */
  if (rc) shutdown(p->recv_fd, SHUT_RDWR);
  pthread_join(th, NULL);
  if (o->recv_failed) rc = -1;
  pthread_mutex_destroy(&o->mu);
  pthread_cond_destroy(&o->cv);
  return rc;
}

/* ---- N-API ---- */

#define CHECK(env, call)                                                     \
  do {                                                                       \
    if ((call) != napi_ok) {                                                 \
      napi_throw_error((env), NULL, "ring_plane: N-API call failed: " #call); \
      return NULL;                                                           \
    }                                                                        \
  } while (0)

/* Closes the sockets the plane made; adopted ones are only forgotten (JavaScript destroys them). */
static void plane_close_fds(Plane *p) {
  if (p->listen_fd >= 0) close(p->listen_fd);
  if (p->owns_fds && p->send_fd >= 0) close(p->send_fd);
  if (p->owns_fds && p->recv_fd >= 0) close(p->recv_fd);
  p->listen_fd = p->send_fd = p->recv_fd = -1;
}

static void plane_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Plane *p = data;
  plane_close_fds(p);
  if (p->wake_fd >= 0) close(p->wake_fd);
  free(p->scratch);
  free(p);
}

/* A plane without sockets; its run id, generation and timeout from argv[i..i+3) where given. */
static Plane *plane_new(napi_env env, int rank, int world, size_t argc, napi_value *argv, size_t i) {
  Plane *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->rank = rank;
  p->world = world;
  p->listen_fd = p->send_fd = p->recv_fd = -1;
  p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  p->timeout_ms = DEFAULT_TIMEOUT_MS;
  memcpy(p->run_id, "bench-native", 12);
  p->run_id_len = 12;
  p->generation = 1;
  napi_valuetype vt;
  if (argc > i && napi_typeof(env, argv[i], &vt) == napi_ok && vt == napi_string) {
    char id[RUN_ID_MAX + 1];
    size_t n = 0;
    napi_get_value_string_utf8(env, argv[i], id, sizeof id, &n);
    memcpy(p->run_id, id, n);
    p->run_id_len = n;
  }
  if (argc > i + 1 && napi_typeof(env, argv[i + 1], &vt) == napi_ok && vt == napi_number)
    napi_get_value_uint32(env, argv[i + 1], &p->generation);
  if (argc > i + 2 && napi_typeof(env, argv[i + 2], &vt) == napi_ok && vt == napi_number)
    napi_get_value_int32(env, argv[i + 2], &p->timeout_ms);
  if (p->wake_fd < 0 || p->timeout_ms <= 0 || world < 1 || rank < 0 || rank >= world) {
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

/*
 * listen(rank, world, sockbufBytes, mode 0|1, runId = 'bench-native', generation = 1, timeoutMs = 60000)
 * -> [plane, port] (run id and generation go on every chunk; the run id is at most 64 bytes of
 * UTF-8). The plane makes and owns its sockets (connect, accept).
 */
static napi_value js_listen(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t rank, world, sockbuf, mode;
  CHECK(env, napi_get_value_int32(env, argv[0], &rank));
  CHECK(env, napi_get_value_int32(env, argv[1], &world));
  CHECK(env, napi_get_value_int32(env, argv[2], &sockbuf));
  CHECK(env, napi_get_value_int32(env, argv[3], &mode));
  Plane *p = plane_new(env, rank, world, argc, argv, 4);
  if (!p) {
    napi_throw_error(env, NULL, "ring_plane: bad rank, world size or timeout, or no eventfd");
    return NULL;
  }
  p->owns_fds = 1;
  p->sockbuf = sockbuf;
  p->threads_mode = mode;
  p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      listen(p->listen_fd, 4) != 0 || getsockname(p->listen_fd, (struct sockaddr *)&a, &al) != 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "ring_plane: rank %d cannot listen: %s", rank, strerror(errno));
    plane_finalize(env, p, NULL);
    napi_throw_error(env, NULL, msg);
    return NULL;
  }
  napi_value ext, port, out;
  CHECK(env, napi_create_external(env, p, plane_finalize, NULL, &ext));
  CHECK(env, napi_create_int32(env, ntohs(a.sin_port), &port));
  CHECK(env, napi_create_array_with_length(env, 2, &out));
  CHECK(env, napi_set_element(env, out, 0, ext));
  CHECK(env, napi_set_element(env, out, 1, port));
  return out;
}

/*
 * connect(plane, downstreamPort): dials rank r+1 on loopback and sends its rank. Blocking, but a
 * loopback connect completes into the peer's backlog without the peer's accept, so every rank can
 * connect and then accept once all listen.
 */
static napi_value js_connect(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Plane *p = get_plane(env, argv[0]);
  if (!p) return NULL;
  if (!p->owns_fds) {
    napi_throw_error(env, NULL, "ring_plane: connect and accept are for planes from listen (this one adopts)");
    return NULL;
  }
  int32_t port;
  CHECK(env, napi_get_value_int32(env, argv[1], &port));
  char msg[200] = "";
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  set_opts(p, fd); /* buffer sizes before connect, so the window scale follows them */
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    snprintf(msg, sizeof msg, "ring_plane: rank %d cannot connect to port %d: %s", p->rank, port,
             strerror(errno));
    close(fd);
    goto fail;
  }
  p->send_fd = fd;
  int32_t me = p->rank;
  if (send(fd, &me, 4, MSG_NOSIGNAL) != 4) {
    snprintf(msg, sizeof msg, "ring_plane: rank %d: hello: %s", p->rank, strerror(errno));
    goto fail;
  }
  return NULL;
fail:
  napi_throw_error(env, NULL, msg);
  return NULL;
}

/* accept(plane): takes rank r-1's connection (30 s at most) and checks its hello. */
static napi_value js_accept(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Plane *p = get_plane(env, argv[0]);
  if (!p) return NULL;
  if (!p->owns_fds) {
    napi_throw_error(env, NULL, "ring_plane: connect and accept are for planes from listen (this one adopts)");
    return NULL;
  }
  char msg[200] = "";
  if (p->sockbuf > 0) set_opts(p, p->listen_fd); /* accepted sockets inherit the listener's sizes */
  struct pollfd pf = {.fd = p->listen_fd, .events = POLLIN};
  if (poll(&pf, 1, 30000) != 1) {
    snprintf(msg, sizeof msg, "ring_plane: rank %d: no connection from rank %d in 30 s", p->rank,
             modi(p->rank - 1, p->world));
    goto fail;
  }
  int rfd = accept(p->listen_fd, NULL, NULL);
  if (rfd < 0) {
    snprintf(msg, sizeof msg, "ring_plane: rank %d: accept: %s", p->rank, strerror(errno));
    goto fail;
  }
  set_opts(p, rfd);
  p->recv_fd = rfd;
  int32_t up = -1;
  if (recv_all(rfd, &up, 4) != 0 || up != modi(p->rank - 1, p->world)) {
    snprintf(msg, sizeof msg, "ring_plane: rank %d: expected rank %d upstream, got %d", p->rank,
             modi(p->rank - 1, p->world), up);
    goto fail;
  }
  close(p->listen_fd);
  p->listen_fd = -1;
  return NULL;
fail:
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static void op_execute(napi_env env, void *data) {
  (void)env;
  Op *o = data;
  Plane *p = o->p;
  int W = p->world;
  o->steps = 2 * (W - 1);
  o->recv_start = calloc((size_t)o->steps + 1, sizeof(size_t));
  for (int t = 0; t < o->steps; t++)
    o->recv_start[t + 1] = o->recv_start[t] + nchunks(o->n, W, modi(p->rank - 1 - t, W), o->chunk_elems);
  if (p->scratch_bytes < o->chunk_elems * 4) {
    free(p->scratch);
    p->scratch_bytes = o->chunk_elems * 4;
    if (posix_memalign((void **)&p->scratch, 64, p->scratch_bytes) != 0) {
      p->scratch = NULL;
      p->scratch_bytes = 0;
      snprintf(o->err, sizeof o->err, "rank %d: out of memory", p->rank);
      return;
    }
  }
  if (W == 1) return;
  if (p->threads_mode) run_threads(o);
  else run_poll(o);
}

static void set_str(napi_env env, napi_value obj, const char *key, const char *s) {
  napi_value v;
  if (napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v) == napi_ok) napi_set_named_property(env, obj, key, v);
}

static void set_int(napi_env env, napi_value obj, const char *key, int n) {
  napi_value v;
  if (napi_create_int32(env, n, &v) == napi_ok) napi_set_named_property(env, obj, key, v);
}

static void set_bool(napi_env env, napi_value obj, const char *key, int b) {
  napi_value v;
  if (napi_get_boolean(env, b != 0, &v) == napi_ok) napi_set_named_property(env, obj, key, v);
}

static void op_complete(napi_env env, napi_status status, void *data) {
  Op *o = data;
  Plane *p = o->p;
  p->busy = 0;
  p->seq++;
  /* A cancel() of this allreduce is spent: the next one starts clean. */
  __atomic_store_n(&p->cancel, 0, __ATOMIC_RELEASE);
  uint64_t drain;
  while (read(p->wake_fd, &drain, sizeof drain) > 0) {
  }
  napi_value v;
  if (status != napi_ok && !o->err[0]) snprintf(o->err, sizeof o->err, "ring_plane: async work cancelled");
  if (o->err[0]) {
    napi_value m;
    napi_create_string_utf8(env, o->err, NAPI_AUTO_LENGTH, &m);
    napi_create_error(env, NULL, m, &v);
    set_str(env, v, "code", o->code ? o->code : "error");
    set_str(env, v, "side", o->side ? o->side : "local");
    set_int(env, v, "peerRank", o->code ? o->peer : p->rank);
    set_bool(env, v, "sendBroken", o->send_broken);
    set_bool(env, v, "recvBroken", o->recv_broken);
    if (o->other) {
      napi_value frame;
      void *copy;
      if (napi_create_buffer_copy(env, o->other_len, o->other, &copy, &frame) == napi_ok)
        napi_set_named_property(env, v, "frame", frame);
    }
    napi_reject_deferred(env, o->deferred, v);
  } else {
    napi_get_undefined(env, &v);
    napi_resolve_deferred(env, o->deferred, v);
  }
  napi_delete_reference(env, o->array_ref);
  napi_delete_reference(env, o->plane_ref);
  napi_delete_async_work(env, o->work);
  free(o->recv_start);
  free(o->other);
  free(o);
}

/*
 * allreduce(plane, float32array, chunkBytes, epoch = 0, step = 0) -> Promise<void>. A rejection
 * carries code ('cancelled', 'timeout', 'frame', 'closed', 'lost', 'protocol', 'error'), side
 * ('upstream', 'downstream', 'local'), peerRank, sendBroken and recvBroken (a stream left inside a
 * message: destroy it, write nothing), and `frame` (a Buffer, code 'frame') with the message the
 * upstream (inbound.ts fromUpstream) or downstream (fromDownstream) neighbour sent.
 */
static napi_value js_allreduce(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Plane *p = get_plane(env, argv[0]);
  if (!p) return NULL;
  napi_typedarray_type type;
  size_t len, off;
  void *base;
  napi_value ab;
  if (napi_get_typedarray_info(env, argv[1], &type, &len, &base, &ab, &off) != napi_ok ||
      type != napi_float32_array) {
    napi_throw_type_error(env, NULL, "ring_plane: allreduce wants a Float32Array");
    return NULL;
  }
  int32_t chunk_bytes;
  CHECK(env, napi_get_value_int32(env, argv[2], &chunk_bytes));
  if (chunk_bytes < 4 || len > UINT32_MAX || p->send_fd < 0 || p->recv_fd < 0 || p->busy) {
    napi_throw_error(env, NULL, "ring_plane: bad chunk size, plane not connected, or an allreduce in flight");
    return NULL;
  }
  Op *o = calloc(1, sizeof *o);
  o->p = p;
  o->data = base; /* napi_get_typedarray_info's data already includes the byte offset */
  o->n = len;
  o->chunk_elems = (size_t)chunk_bytes / 4;
  if (argc > 3) napi_get_value_uint32(env, argv[3], &o->epoch);
  if (argc > 4) napi_get_value_uint32(env, argv[4], &o->step);
  napi_value promise, name;
  CHECK(env, napi_create_promise(env, &o->deferred, &promise));
  CHECK(env, napi_create_reference(env, argv[1], 1, &o->array_ref));
  CHECK(env, napi_create_reference(env, argv[0], 1, &o->plane_ref));
  CHECK(env, napi_create_string_utf8(env, "ring_plane.allreduce", NAPI_AUTO_LENGTH, &name));
  CHECK(env, napi_create_async_work(env, NULL, name, op_execute, op_complete, o, &o->work));
  CHECK(env, napi_queue_async_work(env, o->work));
  p->busy = 1;
  return promise;
}

/*
 * hugepages(float32array) -> bytes advised: asks for transparent huge pages (MADV_HUGEPAGE) on the
 * 2 MiB-aligned interior of a fresh, untouched array, so its first touch faults huge pages. An
 * experiment (BENCH_NATIVE_THP): do TLB misses in the kernel's socket copies cost CPU?
 */
static napi_value js_hugepages(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_typedarray_type type;
  size_t len, off;
  void *base;
  napi_value ab, out;
  CHECK(env, napi_get_typedarray_info(env, argv[0], &type, &len, &base, &ab, &off));
  uintptr_t lo = ((uintptr_t)base + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1);
  uintptr_t hi = ((uintptr_t)base + len * 4) & ~(uintptr_t)((2u << 20) - 1);
  double advised = 0;
  if (hi > lo && madvise((void *)lo, hi - lo, MADV_HUGEPAGE) == 0) advised = (double)(hi - lo);
  CHECK(env, napi_create_double(env, advised, &out));
  return out;
}

/* close(plane): closes its sockets now (the memory goes with the external's finalizer). */
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
  plane_close_fds(p);
  return NULL;
}

/*
 * create(rank, world, runId = 'bench-native', generation = 1, timeoutMs = 60000) -> plane: a
 * plane for sockets JavaScript connected (adopt), in poll mode.
 */
static napi_value js_create(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t rank, world;
  CHECK(env, napi_get_value_int32(env, argv[0], &rank));
  CHECK(env, napi_get_value_int32(env, argv[1], &world));
  Plane *p = plane_new(env, rank, world, argc, argv, 2);
  if (!p) {
    napi_throw_error(env, NULL, "ring_plane: bad rank, world size or timeout, or no eventfd");
    return NULL;
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
  if (p->owns_fds || p->busy) {
    napi_throw_error(env, NULL, "ring_plane: adopt needs a plane from create, with no allreduce in flight");
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
 * poll_loop.c), or resolves if it had already ended. Poll mode only (throws for threads mode); a
 * no-op when nothing runs.
 */
static napi_value js_cancel(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Plane *p = get_plane(env, argv[0]);
  if (!p) return NULL;
  if (p->threads_mode) {
    napi_throw_error(env, NULL, "ring_plane: cancel needs a poll-mode plane (threads mode cannot be woken)");
    return NULL;
  }
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
      {"listen", NULL, js_listen, NULL, NULL, NULL, napi_default, NULL},
      {"connect", NULL, js_connect, NULL, NULL, NULL, napi_default, NULL},
      {"accept", NULL, js_accept, NULL, NULL, NULL, napi_default, NULL},
      {"allreduce", NULL, js_allreduce, NULL, NULL, NULL, napi_default, NULL},
      {"hugepages", NULL, js_hugepages, NULL, NULL, NULL, napi_default, NULL},
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
