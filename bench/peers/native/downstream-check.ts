/**
 * Check of the native plane's failure paths over JavaScript's sockets (poll_loop.c): a ring of two,
 * rank 0 a native plane on adopted sockets (js-sockets.ts), rank 1 played here in JavaScript with
 * src/collective's schedule and codec. Each case builds a fresh ring:
 *   - an abort from downstream (RingRequest.abort on rank 1's receive socket) rejects with
 *     code 'frame', side 'downstream', and inbound.ts's fromDownstream names its origin; the
 *     send stream is left at a message boundary, so rank 0's JavaScript writes its own abort and
 *     the orderly close on both sockets and rank 1 reads whole chunks, then them;
 *   - the orderly close from downstream while frames remain: 'closed', the marker left unread;
 *     after the last frame was sent: the allreduce still ends with the exact sums, the next one
 *     rejects 'closed', and JavaScript then reads the marker itself;
 *   - an end without the marker, and a reset: 'lost';
 *   - cancel() while waiting at a frame boundary: 'cancelled', sendBroken false (abort and close
 *     written and read as above); while a 16 MiB frame is half sent to a rank that stopped
 *     reading: 'cancelled' within the settle grace, sendBroken true (JavaScript must destroy);
 *     the same with rank 1 reading on after the cancel: the frame is finished first (settled,
 *     sendBroken false), and rank 1 reads it whole, then the abort and the close;
 *     cancel() with nothing in flight: false, and the next allreduce is not cancelled;
 *   - timeoutMs: nothing from upstream rejects 'timeout' naming the frame and rank waited on,
 *     as RingTimeoutError's text does; everything received but nothing taken by downstream
 *     rejects 'timeout' with "took none of our frames".
 * Bench only: `node --import tsx bench/peers/native/downstream-check.ts` after build.sh; exit 1
 * on any failure. An allreduce that does not answer in 60 s fails the check and ends it.
 */
import type net from 'node:net';
import { RingAbortedError, RingTimeoutError } from '../../../src/collective/api.ts';
import {
  type ChunkHeader,
  decodeRequest,
  decodeResponse,
  encodeChunkFrame,
  encodeRequest,
  encodeResponse,
} from '../../../src/collective/frame-codec.ts';
import { fromDownstream } from '../../../src/collective/inbound.ts';
import {
  chunkRange,
  chunksInSegment,
  isReduceStep,
  phaseStep,
  recvSegment,
  sendSegment,
} from '../../../src/collective/schedule.ts';
import {
  BYE,
  connectRing,
  handOver,
  type PlaneError,
  prefixed,
  type Received,
  readMessages,
  rp,
} from './js-sockets.ts';

const W = 2;
const RUN = 'downstream';
/** A chunk larger than loopback's socket buffers can hold (tcp_wmem + tcp_rmem maxima). */
const BIG_CHUNK = 16 << 20;
const BIG_N = 8 << 20; // two 16 MiB segments
let failures = 0;
function check(ok: boolean, what: string): void {
  if (!ok) {
    failures++;
    console.error(`FAIL ${what}`);
  }
}

/** Rank 1's header for chunk c of ring step t, sent by `sender` (0 or 1), allreduce `sequence`. */
function header(sender: number, t: number, c: number, n: number, ce: number, sequence: number): ChunkHeader {
  const segment = sender === 1 ? sendSegment(1, t, W) : recvSegment(1, t, W);
  const range = chunkRange(n, W, segment, c, ce);
  return {
    runId: RUN,
    generation: 1,
    senderRank: sender,
    sequence,
    epoch: 0,
    step: 0,
    phase: isReduceStep(t, W) ? 1 : 2,
    phaseStep: phaseStep(t, W),
    segment,
    chunkIndex: c,
    offset: range.offset,
    length: range.length,
    totalLength: n,
    dtype: 1,
  };
}

function frameOf(h: ChunkHeader, values: Float32Array): Buffer {
  const { frame, payloadAt } = encodeChunkFrame(h, values.byteLength);
  frame.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), payloadAt);
  return prefixed(frame);
}

const abortOf = (origin: number, message: string) => ({
  runId: RUN,
  generation: 1,
  originRank: origin,
  reason: 4,
  message,
  sequence: 0,
});

/** A fresh ring: rank 0's plane on adopted sockets; rank 1's sockets stay JavaScript's. */
async function ring(timeoutMs = 60_000) {
  const js = await connectRing(W);
  const plane = rp.create(0, W, RUN, 1, timeoutMs);
  rp.adopt(plane, handOver(js.recv[0]), handOver(js.send[0]));
  return {
    plane,
    /** Rank 0's sockets (the plane's while it runs). */
    in0: js.recv[0],
    out0: js.send[0],
    /** Rank 1's: it reads rank 0's chunks on in1, writes its chunks on out1, aborts upstream on in1. */
    in1: js.recv[1],
    out1: js.send[1],
    close: async () => {
      rp.close(plane);
      await js.close();
    },
  };
}

/**
 * Runs rank 0's allreduce on `plane`; resolves with its error (or null). After 60 s without an
 * answer the check fails and stops (the plane still holds its pool thread: nothing later could run).
 */
async function outcome(plane: unknown, p: Promise<void>): Promise<PlaneError | null> {
  const guard = setTimeout(() => {
    check(false, 'no answer from the allreduce in 60 s; stopping');
    rp.cancel(plane); // else the exit waits for the pool thread (libuv joins its threads at exit)
    process.exit(1);
  }, 60_000);
  const r = await p.then(
    () => null,
    (e: PlaneError) => e,
  );
  clearTimeout(guard);
  return r;
}

/** Resolves once `got` holds `count` messages (polled on each 'data' event of `socket`). */
function messagesIn(socket: net.Socket, got: Received, count: number): Promise<void> {
  return new Promise((resolve) => {
    const look = (): void => {
      if (got.messages.length >= count) {
        socket.off('data', look);
        resolve();
      }
    };
    socket.on('data', look);
    look();
  });
}

/** After a failure at a frame boundary: rank 0's JavaScript writes abort + close on both sockets. */
async function abortAndClose(r: Awaited<ReturnType<typeof ring>>, rank1Got: Received, what: string) {
  const fromUp = readMessages(r.out1); // rank 1 reads what rank 0 writes upstream
  const ended = new Promise<void>((resolve) => r.in1.once('end', resolve));
  r.out0.end(Buffer.concat([prefixed(encodeResponse({ abort: abortOf(0, 'native rank failed') })), BYE]));
  r.in0.end(Buffer.concat([prefixed(encodeRequest({ abort: abortOf(0, 'native rank failed') })), BYE]));
  const up = await fromUp.ended;
  await ended;
  const chunks = rank1Got.messages.length - 1;
  const downOk =
    chunks >= 0 &&
    rank1Got.messages.slice(0, chunks).every((m) => decodeResponse(m).kind === 'chunk') &&
    decodeResponse(rank1Got.messages[chunks]).kind === 'abort' &&
    rank1Got.byes === 1 &&
    rank1Got.rest === 0;
  const upOk =
    up.messages.length === 1 &&
    decodeRequest(up.messages[0]).abort?.message === 'native rank failed' &&
    up.byes === 1;
  check(
    downOk && upOk,
    `${what}: rank 1 read ${JSON.stringify({ ...rank1Got, messages: rank1Got.messages.length })} / ${JSON.stringify({ ...up, messages: up.messages.length })}`,
  );
  console.log(
    `  then rank 0's JavaScript wrote abort + orderly close: rank 1 read ${chunks} whole chunks, the abort and the close downstream, the abort and the close upstream: ${downOk && upOk ? 'ok' : 'FAILED'}`,
  );
}

// 1. An abort from downstream while rank 0 waits on upstream.
{
  const r = await ring();
  const rank1 = readMessages(r.in1).got;
  const data = new Float32Array(1000);
  const p = rp.allreduce(r.plane, data, 1024);
  r.in1.write(prefixed(encodeRequest({ abort: abortOf(1, 'rank 1 stops') })));
  const e = await outcome(r.plane, p);
  const named = e?.frame && fromDownstream(e.frame, 0, { rank: 1, address: '127.0.0.1' });
  const ok =
    e?.code === 'frame' &&
    e.side === 'downstream' &&
    e.peerRank === 1 &&
    !e.sendBroken &&
    named instanceof RingAbortedError &&
    named.originRank === 1 &&
    named.originMessage === 'rank 1 stops';
  check(ok, `abort from downstream: ${e?.code} ${e?.message}`);
  console.log(
    `abort from downstream: ${e?.code}/${e?.side} (${e?.message}); fromDownstream: ${named?.message}`,
  );
  await abortAndClose(r, rank1, 'abort from downstream');
  await r.close();
}

// 2. The orderly close from downstream while frames remain to send (rank 1 reads nothing).
{
  const r = await ring();
  const p = rp.allreduce(r.plane, new Float32Array(BIG_N), BIG_CHUNK);
  r.in1.write(BYE);
  const e = await outcome(r.plane, p);
  check(e?.code === 'closed' && e.side === 'downstream', `close from downstream: ${e?.code} ${e?.message}`);
  console.log(
    `orderly close from downstream, frames left: ${e?.code}/${e?.side} (${e?.message}), sendBroken ${e?.sendBroken}`,
  );
  await r.close();
}

// 3. End without the marker, and a reset.
for (const how of ['end', 'reset'] as const) {
  const r = await ring();
  const p = rp.allreduce(r.plane, new Float32Array(BIG_N), BIG_CHUNK);
  if (how === 'end') r.in1.end();
  else r.in1.resetAndDestroy();
  const e = await outcome(r.plane, p);
  check(e?.code === 'lost' && e.side === 'downstream', `${how} from downstream: ${e?.code} ${e?.message}`);
  console.log(`${how} from downstream: ${e?.code}/${e?.side} (${e?.message})`);
  await r.close();
}

// 4. The orderly close after rank 0's last frame: the allreduce completes, the next one fails.
{
  const r = await ring();
  const n = 1003;
  const ce = 64;
  const mine = Float32Array.from({ length: n }, (_, i) => (i % 5) * 2);
  const theirs = Float32Array.from({ length: n }, (_, i) => (i % 7) + 0.5);
  const rank1 = readMessages(r.in1).got;
  const send = (t: number, c: number) => {
    const h = header(1, t, c, n, ce, 0);
    r.out1.write(frameOf(h, mine.subarray(h.offset, h.offset + h.length)));
  };
  const steps = [0, 1].map((t) => chunksInSegment(n, W, recvSegment(1, t, W), ce));
  for (let c = 0; c < chunksInSegment(n, W, sendSegment(1, 0, W), ce); c++) send(0, c);
  const p = rp.allreduce(r.plane, theirs, ce * 4);
  // Rank 1 reads every frame of rank 0 (reducing step 0's), then closes in order, then sends step 1.
  await messagesIn(r.in1, rank1, steps[0] + steps[1]);
  rank1.messages.forEach((m, k) => {
    const ch = decodeResponse(m);
    if (ch.kind !== 'chunk') return;
    const v = new Float32Array(Uint8Array.from(ch.chunk.payload).buffer);
    const dst = mine.subarray(ch.chunk.offset, ch.chunk.offset + ch.chunk.length);
    if (k < steps[0]) for (let i = 0; i < v.length; i++) dst[i] += v[i];
    else dst.set(v);
  });
  r.in1.write(BYE);
  for (let c = 0; c < steps[0]; c++) send(1, c);
  const e = await outcome(r.plane, p);
  let bad = 0;
  for (let i = 0; i < n; i++) if (theirs[i] !== mine[i] || mine[i] !== (i % 5) * 2 + (i % 7) + 0.5) bad++;
  check(e === null && bad === 0, `close after the last frame: ${e?.message}, ${bad} wrong`);
  const next = await outcome(r.plane, rp.allreduce(r.plane, new Float32Array(n), ce * 4));
  check(
    next?.code === 'closed' && next.side === 'downstream',
    `the next allreduce: ${next?.code} ${next?.message}`,
  );
  const back = readMessages(r.out0);
  r.out0.end();
  const got = await back.ended;
  check(
    got.byes === 1 && got.messages.length === 0 && got.ended,
    `the marker left for JavaScript: ${JSON.stringify(got)}`,
  );
  console.log(
    `orderly close after the last frame sent: allreduce ${e === null ? 'resolved' : 'FAILED'} with ${bad} wrong elements; the next: ${next?.code} (${next?.message}); JavaScript then read ${got.byes} close marker`,
  );
  await r.close();
}

// 5. cancel(): at a frame boundary (rank 1 read rank 0's step 0), and with nothing in flight.
{
  const r = await ring();
  check(rp.cancel(r.plane) === false, 'cancel with nothing in flight returned true');
  const rank1 = readMessages(r.in1).got;
  const n = 100_000;
  const p = rp.allreduce(r.plane, new Float32Array(n), 4096);
  await messagesIn(r.in1, rank1, chunksInSegment(n, W, recvSegment(1, 0, W), 1024));
  const t0 = performance.now();
  check(rp.cancel(r.plane) === true, 'cancel in flight returned false');
  const e = await outcome(r.plane, p);
  const ms = performance.now() - t0;
  check(
    e?.code === 'cancelled' && !e.sendBroken && !e.recvBroken,
    `cancel at a boundary: ${e?.code} ${e?.message}`,
  );
  console.log(
    `cancel at a frame boundary: ${e?.code} after ${ms.toFixed(1)} ms (${e?.message}), sendBroken ${e?.sendBroken}`,
  );
  await abortAndClose(r, rank1, 'cancel at a boundary');
  await r.close();
}

// 6. cancel() with a 16 MiB frame half sent to a rank that stopped reading after 1 MiB.
{
  const r = await ring();
  let taken = 0;
  const stopped = new Promise<void>((resolve) => {
    r.in1.on('data', (b: Buffer) => {
      taken += b.length;
      if (taken >= 1 << 20) {
        r.in1.pause();
        resolve();
      }
    });
  });
  r.in1.resume();
  const p = rp.allreduce(r.plane, new Float32Array(BIG_N), BIG_CHUNK);
  await stopped;
  const t0 = performance.now();
  rp.cancel(r.plane);
  const e = await outcome(r.plane, p);
  const ms = performance.now() - t0;
  check(
    e?.code === 'cancelled' && e.sendBroken === true && ms < 5_000,
    `cancel mid-frame: ${e?.code} ${e?.message} ${ms} ms`,
  );
  console.log(
    `cancel mid-frame (rank 1 took ${taken} B of 16 MiB): ${e?.code} after ${ms.toFixed(0)} ms (settle grace 1000 ms), sendBroken ${e?.sendBroken}`,
  );
  await r.close();
}

// 6b. The same, but rank 1 reads on after the cancel: the frame in progress is finished (settled).
{
  const r = await ring();
  const rank1 = readMessages(r.in1).got;
  let taken = 0;
  const stopped = new Promise<void>((resolve) => {
    const count = (b: Buffer): void => {
      taken += b.length;
      if (taken >= 1 << 20) {
        r.in1.off('data', count);
        r.in1.pause();
        resolve();
      }
    };
    r.in1.on('data', count);
  });
  const p = rp.allreduce(r.plane, new Float32Array(BIG_N), BIG_CHUNK);
  await stopped;
  rp.cancel(r.plane);
  r.in1.resume();
  const e = await outcome(r.plane, p);
  check(
    e?.code === 'cancelled' && e.sendBroken === false,
    `cancel mid-frame, settled: ${e?.code} ${e?.message}`,
  );
  console.log(
    `cancel mid-frame (rank 1 took ${taken} B of 16 MiB, then read on): ${e?.code}, the frame finished, sendBroken ${e?.sendBroken}`,
  );
  await abortAndClose(r, rank1, 'cancel mid-frame, settled');
  await r.close();
}

// 7. timeoutMs: nothing from upstream; then everything received but nothing taken downstream.
{
  const r = await ring(400);
  readMessages(r.in1);
  const t0 = performance.now();
  const e = await outcome(r.plane, rp.allreduce(r.plane, new Float32Array(1000), 1024));
  const ms = performance.now() - t0;
  const text =
    /^rank 0: allreduce #0 made no progress for \d+ ms \(timeoutMs 400\): no frame 0 \(ring step 0, chunk 0\) from rank 1$/;
  check(
    e?.code === 'timeout' && e.side === 'upstream' && e.peerRank === 1 && text.test(e.message) && ms >= 400,
    `timeout upstream: ${e?.code} ${e?.message}`,
  );
  console.log(
    `timeout, nothing from upstream: ${e?.code}/${e?.side} after ${ms.toFixed(0)} ms: ${e?.message}`,
  );
  // The same text as the JavaScript ring's RingTimeoutError, which names the rank waited on.
  const js = e && new RingTimeoutError(e.message, [e.peerRank]);
  check(js?.waitingOn[0] === 1, 'waitingOn');
  await r.close();
}
{
  const r = await ring(2_000);
  const n = BIG_N;
  const zeros = new Float32Array(n);
  for (const t of [0, 1]) {
    for (let c = 0; c < chunksInSegment(n, W, sendSegment(1, t, W), BIG_CHUNK / 4); c++) {
      const h = header(1, t, c, n, BIG_CHUNK / 4, 0);
      r.out1.write(frameOf(h, zeros.subarray(h.offset, h.offset + h.length)));
    }
  }
  const e = await outcome(r.plane, rp.allreduce(r.plane, new Float32Array(n), BIG_CHUNK));
  const text =
    /^rank 0: allreduce #0 made no progress for \d+ ms \(timeoutMs 2000\): rank 1 took none of our frames$/;
  check(
    e?.code === 'timeout' && e.side === 'downstream' && text.test(e.message) && e.sendBroken,
    `timeout downstream: ${e?.code} ${e?.message}`,
  );
  console.log(
    `timeout, downstream takes nothing: ${e?.code}/${e?.side}, sendBroken ${e?.sendBroken}: ${e?.message}`,
  );
  await r.close();
}
console.log(failures === 0 ? 'downstream-check: ok' : `downstream-check: ${failures} failures`);
if (failures > 0) process.exit(1);
