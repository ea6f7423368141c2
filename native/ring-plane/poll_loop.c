/*
 * The ring's one-thread loop: both sockets and an eventfd in one poll(), so that the allreduce's
 * own thread sends, receives, reduces, watches the downstream neighbour and wakes for cancel().
 * Written for sockets the plane may not own (adopt(): JavaScript's libuv sockets): it never
 * changes their file flags (every call says MSG_DONTWAIT instead of setting O_NONBLOCK), never
 * closes them, and on a failure leaves each stream at a message boundary where it can
 * (JavaScript then writes its abort frame and the orderly close) or says it could not.
 *
 * - Downstream: the send connection carries only aborts (RingRequest) and the zero-length close
 *   marker from the downstream neighbour (tcp-edges.ts). A whole message is read and fails the
 *   allreduce with its bytes (code 'frame', side 'downstream': inbound.ts fromDownstream names it);
 *   the close marker is never taken (JavaScript reads it when it takes the socket back): it fails
 *   the allreduce ('closed') while frames remain to send, and otherwise only stops the watch (the
 *   next allreduce fails on it: ring-allreduce.ts's "needed" rule); an end without the marker or
 *   a reset is 'lost'. A message is taken only once whole (MSG_PEEK), so nothing JavaScript may
 *   read later is torn.
 * - cancel(): the loop stops at its next turn ('cancelled').
 * - Progress: no byte moved on either socket for timeoutMs fails with ring-allreduce.ts's
 *   RingTimeoutError text, naming the side waited on ('timeout').
 * - Settling: after any failure but a broken send connection, the frame being sent is finished
 *   for at most SETTLE_MS (or timeoutMs if smaller); if it cannot be, sendBroken tells JavaScript
 *   to destroy the connection instead of writing to it. recvBroken: a message from upstream was
 *   left half read.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "plane.h"

/*
 * Writes what the socket takes of the current frame: 1 the frame is out, 0 the socket is full, -1
 * error. Only once the frame's data is final: a payload with bfloat16 elements is encoded then.
 */
static int send_frame(Op *o, Cursor *s) {
  Plane *p = o->p;
  if (s->k16 && !s->staged) {
    bf16_encode(p->stage, s->ptr, s->len, s->k16);
    s->staged = 1;
  }
  while (s->at < s->hlen + s->bytes) {
    struct iovec iov[2];
    int nv = 0;
    if (s->at < s->hlen) iov[nv++] = (struct iovec){(char *)s->hdr + s->at, s->hlen - s->at};
    size_t pay = s->at < s->hlen ? 0 : s->at - s->hlen;
    iov[nv++] = (struct iovec){(char *)s->src + pay, s->bytes - pay};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = nv};
    ssize_t k = sendmsg(p->send_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
    s->at += (size_t)k;
  }
  return 1;
}

/* After a failure: finishes the frame in progress within the grace; 0 done (or none), -1 not. */
static int settle_send(Op *o, Cursor *s) {
  Plane *p = o->p;
  if (!s->have || s->at == 0) return 0;
  int64_t end = now_ms() + (p->timeout_ms < SETTLE_MS ? p->timeout_ms : SETTLE_MS);
  for (;;) {
    int e = send_frame(o, s);
    if (e != 0) return e > 0 ? 0 : -1;
    int64_t left = end - now_ms();
    if (left <= 0) return -1;
    struct pollfd pf = {.fd = p->send_fd, .events = POLLOUT};
    poll(&pf, 1, (int)left);
  }
}

/*
 * Reads what the downstream neighbour sent on the send connection, if anything: 0 nothing (or a
 * close marker left unread), 1 a message not yet whole, -1 the allreduce fails. *watch drops to 0
 * after a close marker; *dead is set when the connection itself failed.
 */
static int watch_downstream(Op *o, int sending, int *watch, int *dead) {
  Plane *p = o->p;
  int down = (p->rank + 1) % p->world;
  uint8_t pre[WIRE_PREFIX];
  ssize_t k;
  do k = recv(p->send_fd, pre, WIRE_PREFIX, MSG_PEEK | MSG_DONTWAIT);
  while (k < 0 && errno == EINTR);
  if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
  if (k <= 0) {
    *dead = 1;
    if (k == 0)
      return op_fail(o, "lost", "downstream", down,
                     "rank %d: downstream neighbour %s data connection lost (ended without an orderly "
                     "close) during allreduce #%u",
                     p->rank, p->down_name, p->seq);
    return op_fail(o, "lost", "downstream", down,
                   "rank %d: downstream neighbour %s data connection failed: %s (allreduce #%u)", p->rank,
                   p->down_name, strerror(errno), p->seq);
  }
  if (k < WIRE_PREFIX) return 1;
  uint32_t len;
  int kind = wire_prefix(pre, &len);
  if (kind < 0)
    return op_fail(o, "protocol", "downstream", down,
                   "rank %d: downstream neighbour %s sent a bad data message (message flag %u)", p->rank,
                   p->down_name, pre[0]);
  if (kind == 0) { /* never taken: JavaScript reads it when it takes the socket back */
    *watch = 0;
    if (!sending) return 0; /* the allreduce no longer needs the edge; the next one fails on it */
    return op_fail(o, "closed", "downstream", down,
                   "rank %d: downstream neighbour %s closed its ring edge (orderly close) during "
                   "allreduce #%u, with frames left to send",
                   p->rank, p->down_name, p->seq);
  }
  if (len > DOWN_MAX)
    return op_fail(o, "protocol", "downstream", down,
                   "rank %d: downstream neighbour %s sent a data message of %u bytes, limit %d", p->rank,
                   p->down_name, len, DOWN_MAX);
  uint8_t *msg = malloc(WIRE_PREFIX + (size_t)len);
  if (!msg) return op_fail(o, "error", "local", p->rank, "rank %d: out of memory", p->rank);
  do k = recv(p->send_fd, msg, WIRE_PREFIX + (size_t)len, MSG_PEEK | MSG_DONTWAIT);
  while (k < 0 && errno == EINTR);
  if (k < (ssize_t)(WIRE_PREFIX + len)) {
    free(msg);
    return 1;
  }
  recv(p->send_fd, msg, WIRE_PREFIX + (size_t)len, MSG_DONTWAIT); /* peeked whole: it is there */
  memmove(msg, msg + WIRE_PREFIX, len);
  o->other = msg;
  o->other_len = len;
  return op_fail(o, "frame", "downstream", down,
                 "rank %d: downstream neighbour %s sent a message of %u bytes during allreduce #%u (an "
                 "abort, or a protocol violation); see error.frame",
                 p->rank, p->down_name, len, p->seq);
}

int run_poll(Op *o) {
  Plane *p = o->p;
  int W = p->world, up = modi(p->rank - 1, W), down = (p->rank + 1) % W;
  Cursor s = {0}, r = {0};
  cursor_setup(o, &s, 1);
  cursor_setup(o, &r, 0);
  int rc = 0;
  int watch = 1;      /* read what the downstream sends */
  int down_ready = 1; /* look now: an abort may have come between allreduces */
  int down_partial = 0, send_dead = 0;
  unsigned turns = 0;
  int64_t last = now_ms();
  while (s.have || r.have) {
    if (__atomic_load_n(&p->cancel, __ATOMIC_ACQUIRE)) {
      rc = op_fail(o, "cancelled", "local", p->rank, "rank %d: allreduce #%u cancelled", p->rank, p->seq);
      goto out;
    }
    /* A loop that never waits still looks downstream every 64 turns. */
    if (watch && (down_ready || (++turns & 63) == 0)) {
      down_ready = 0;
      int e = watch_downstream(o, s.have, &watch, &send_dead);
      if (e < 0) {
        rc = -1;
        goto out;
      }
      down_partial = e == 1;
    }
    /* The sender may go when its frame's data is final: step 0, or chunk c of step t-1 is in. */
    int can_send = s.have && (s.t == 0 || r.frame > o->recv_start[s.t - 1] + s.c);
    int did = 0;
    if (can_send) {
      for (;;) {
        size_t before = s.at;
        int e = send_frame(o, &s);
        if (s.at != before) did = 1;
        if (e < 0) {
          send_dead = 1;
          rc = op_fail(o, "lost", "downstream", down, "rank %d: send to %s: %s", p->rank, p->down_name,
                       strerror(errno));
          goto out;
        }
        if (e == 0) break;
        cursor_next(o, &s, 1);
        if (!s.have || !(s.t == 0 || r.frame > o->recv_start[s.t - 1] + s.c)) break;
      }
    }
    if (r.have) {
      for (;;) {
        ssize_t k;
        if (r.at < r.hlen) {
          /* the prefix alone first: a shorter message (an abort) must not be read past */
          size_t upto = r.at < WIRE_PREFIX ? WIRE_PREFIX : r.hlen;
          k = recv(p->recv_fd, (char *)r.got + r.at, upto - r.at, MSG_DONTWAIT);
        } else {
          size_t pay = r.at - r.hlen;
          k = recv(p->recv_fd, landing(o, &r) + pay, r.bytes - pay, MSG_DONTWAIT);
        }
        if (k < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK) break;
          if (errno == EINTR) continue;
          rc = op_fail(o, "lost", "upstream", up, "rank %d: receive from %s: %s", p->rank, p->up_name,
                       strerror(errno));
          goto out;
        }
        if (k == 0) {
          rc = op_fail(o, "lost", "upstream", up,
                       "rank %d: upstream neighbour %s data connection lost (ended without an orderly "
                       "close) during allreduce #%u",
                       p->rank, p->up_name, p->seq);
          goto out;
        }
        did = 1;
        r.at += (size_t)k;
        int other = 0;
        if (r.at == WIRE_PREFIX && memcmp(r.got, r.hdr, WIRE_PREFIX) != 0) other = 1;
        if (r.at == r.hlen && memcmp(r.got + WIRE_PREFIX, r.hdr + WIRE_PREFIX, r.hlen - WIRE_PREFIX) != 0)
          other = 1;
        if (other) {
          if (other_message(o, &r, landing(o, &r)) != 0) {
            rc = -1;
            goto out;
          }
          r.at = r.hlen + r.bytes; /* the payload is where it would have been received */
          /* counted as the message it was, as JavaScript counts it (cursor_next adds the canonical size) */
          o->bytes_received += (double)o->applied_len - (double)(r.hlen - WIRE_PREFIX + r.bytes);
        }
        if (r.at == r.hlen + r.bytes) {
          chunk_received(o, &r);
          cursor_next(o, &r, 0);
          if (!r.have) break;
          /* a frame just in may let the sender go: leave the loop to send first */
          if (s.have && s.at == 0 && s.t > 0 && r.frame == o->recv_start[s.t - 1] + s.c + 1) break;
        }
      }
    }
    if (did) {
      last = now_ms();
      continue;
    }
    int want_send = s.have && (s.t == 0 || r.frame > o->recv_start[s.t - 1] + s.c);
    if (!want_send && !r.have) {
      if (!s.have) break; /* done: the last receive finished in this turn */
      rc = op_fail(o, "error", "local", p->rank, "rank %d: schedule stuck (bug)", p->rank);
      goto out;
    }
    struct pollfd fds[3];
    int nf = 0, si = -1;
    short sev = (short)((want_send ? POLLOUT : 0) | (watch && !down_partial ? POLLIN | POLLRDHUP : 0));
    if (sev) {
      si = nf;
      fds[nf++] = (struct pollfd){.fd = p->send_fd, .events = sev};
    }
    if (r.have) fds[nf++] = (struct pollfd){.fd = p->recv_fd, .events = POLLIN};
    fds[nf++] = (struct pollfd){.fd = p->wake_fd, .events = POLLIN};
    int64_t idle = now_ms() - last, left = p->timeout_ms - idle;
    if (left <= 0) {
      if (r.have)
        rc = op_fail(o, "timeout", "upstream", up,
                     "rank %d: allreduce #%u made no progress for %lld ms (timeoutMs %d): no frame %zu (ring "
                     "step %d, chunk %zu) from %s",
                     p->rank, p->seq, (long long)idle, p->timeout_ms, r.frame, r.t, r.c, p->up_name);
      else
        rc = op_fail(o, "timeout", "downstream", down,
                     "rank %d: allreduce #%u made no progress for %lld ms (timeoutMs %d): %s took none of "
                     "our frames",
                     p->rank, p->seq, (long long)idle, p->timeout_ms, p->down_name);
      goto out;
    }
    int wait = down_partial ? 1 : left > INT_MAX ? INT_MAX : (int)left;
    int pr = poll(fds, nf, wait);
    if (pr < 0 && errno != EINTR) {
      rc = op_fail(o, "error", "local", p->rank, "rank %d: poll: %s", p->rank, strerror(errno));
      goto out;
    }
    if (down_partial || (si >= 0 && (fds[si].revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR))))
      down_ready = 1;
  }
out:
  if (rc) {
    o->send_broken = s.have && s.at > 0 && (send_dead || settle_send(o, &s) != 0);
    o->recv_broken = r.have && r.at > 0 && !o->recv_clean;
  }
  return rc;
}
