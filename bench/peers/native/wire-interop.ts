/**
 * Interop check of the native ring on the ring's own wire: a ring of two, rank 0 the native plane
 * (ring_plane.c with wire.c), rank 1 played here in JavaScript with src/collective's schedule
 * (schedule.ts) and codec (frame-codec.ts). Every message the native rank sends must decode with
 * decodeResponse into exactly the chunk the JavaScript ring expects (every field allreduce-op.ts
 * checks, payload 4-byte aligned counting the prefix); the JavaScript rank sends frame-codec's
 * frames (the native fast path) and, for every other chunk, the generated encoder's frames without
 * padding (another valid encoding: the native slow path); both ranks must end with the exact
 * sums. Then the failures: an abort, a chunk of another sequence and the orderly close in place
 * of the first chunk must each fail the native allreduce, the first two with the message on
 * `error.frame` (decoded here), in both native modes.
 * Bench only: `node --import tsx bench/peers/native/wire-interop.ts` after build.sh.
 */
import net from 'node:net';
import {
  type ChunkHeader,
  decodeResponse,
  encodeChunkFrame,
  encodeResponse,
} from '../../../src/collective/frame-codec.ts';
import {
  chunkRange,
  chunksInSegment,
  isReduceStep,
  phaseStep,
  recvSegment,
  sendSegment,
} from '../../../src/collective/schedule.ts';
import { bbn } from '../../../src/generated/bbn.js';
import { nativeAddon } from './addon.ts';

const rp = nativeAddon();

const W = 2;
const RUN = 'interop-ü';
const GENERATION = 7;
const EPOCH = 3;
const STEP = 1234567;
let failures = 0;
function fail(what: string): void {
  failures++;
  if (failures <= 10) console.error(`FAIL ${what}`);
}

/** Splits a byte stream, after its first `skip` bytes, into prefixed messages. */
function reader(socket: net.Socket, skip: number, onMessage: (msg: Buffer) => void): void {
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    const k = Math.min(skip, buf.length);
    skip -= k;
    buf = buf.subarray(k);
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (buf.length < 5 + len) break;
      onMessage(Buffer.from(buf.subarray(5, 5 + len)));
      buf = buf.subarray(5 + len);
    }
  });
}

/** Rank 1's chunk header for chunk c of ring step t, sent by `sender`. */
function header(sender: number, t: number, c: number, n: number, ce: number, sequence: number): ChunkHeader {
  const segment = sender === 1 ? sendSegment(1, t, W) : recvSegment(1, t, W);
  const range = chunkRange(n, W, segment, c, ce);
  return {
    runId: RUN,
    generation: GENERATION,
    senderRank: sender,
    sequence,
    epoch: EPOCH,
    step: STEP,
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

function prefixed(message: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** The frame of chunk h carrying `values`: frame-codec's, or the generated encoder's. */
function frameOf(h: ChunkHeader, values: Float32Array, generated: boolean): Buffer {
  const payload = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (generated) return prefixed(bbn.v1.RingResponse.encode({ chunk: { ...h, payload } }).finish());
  const { frame, payloadAt } = encodeChunkFrame(h, payload.length);
  frame.set(payload, payloadAt);
  return prefixed(frame);
}

/** A connected ring: the native rank 0 and the sockets of the JavaScript rank 1. */
async function ring(threads: number) {
  const server = net.createServer();
  const fromNative = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const [plane, port] = rp.listen(0, W, 0, threads, RUN, GENERATION);
  rp.connect(plane, (server.address() as net.AddressInfo).port);
  const toNative = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve) => toNative.once('connect', resolve));
  // The prototype's hello (the rank, 4 bytes), in the kernel before accept blocks this thread.
  await new Promise<void>((resolve) =>
    toNative.write(Buffer.from(new Int32Array([1]).buffer), () => resolve()),
  );
  rp.accept(plane);
  const inbound = await fromNative;
  const close = () => {
    rp.close(plane);
    toNative.destroy();
    inbound.destroy();
    server.close();
  };
  return { plane, toNative, inbound, close };
}

/** One allreduce of n elements in chunks of ce elements; returns the frames checked. */
async function allreduce(
  threads: number,
  n: number,
  ce: number,
  sequence: number,
): Promise<[number, number]> {
  const { plane, toNative, inbound, close } = await ring(threads);
  const mine = Float32Array.from({ length: n }, (_, i) => (i % 7) + 0.5);
  const theirs = Float32Array.from({ length: n }, (_, i) => (i % 5) * 2);
  let checked = 0;
  let slow = 0;
  const expected: Array<[number, number]> = [];
  for (let t = 0; t < 2 * (W - 1); t++) {
    for (let c = 0; c < chunksInSegment(n, W, recvSegment(1, t, W), ce); c++) expected.push([t, c]);
  }
  const send = (t: number, c: number) => {
    const h = header(1, t, c, n, ce, sequence);
    const values = mine.subarray(h.offset, h.offset + h.length);
    const frame = frameOf(h, values, (t + c) % 2 === 1);
    // Not frame-codec's bytes: the native receiver's byte compare fails, it classifies the message.
    if (!frame.equals(frameOf(h, values, false))) slow++;
    toNative.write(frame);
  };
  const done = new Promise<void>((resolve) => {
    // The native rank's hello (its rank, 4 bytes) comes first.
    reader(inbound, 4, (msg) => {
      const next = expected.shift();
      if (!next) return fail(`n=${n}: a frame beyond the schedule`);
      const [t, c] = next;
      const want = header(0, t, c, n, ce, sequence);
      let got: ReturnType<typeof decodeResponse>;
      try {
        got = decodeResponse(msg);
      } catch (err) {
        return fail(`n=${n} t=${t} c=${c}: undecodable: ${(err as Error).message}`);
      }
      if (got.kind !== 'chunk') return fail(`n=${n}: a ${got.kind}`);
      const { payload, ...fields } = got.chunk;
      if (JSON.stringify(fields) !== JSON.stringify(want)) {
        fail(`n=${n} t=${t} c=${c}: ${JSON.stringify(fields)} != ${JSON.stringify(want)}`);
      }
      if (payload.length !== 4 * want.length || (5 + payload.byteOffset - msg.byteOffset) % 4 !== 0) {
        fail(
          `n=${n} t=${t} c=${c}: payload of ${payload.length} B at ${payload.byteOffset - msg.byteOffset}`,
        );
      }
      const values = new Float32Array(Uint8Array.from(payload).buffer);
      const dst = mine.subarray(want.offset, want.offset + want.length);
      if (isReduceStep(t, W)) {
        for (let i = 0; i < dst.length; i++) dst[i] += values[i];
        send(t + 1, c); // the reduced chunk goes on (all-gather)
      } else {
        dst.set(values);
      }
      checked++;
      if (expected.length === 0) resolve();
    });
    if (expected.length === 0) resolve();
  });
  for (let c = 0; c < chunksInSegment(n, W, sendSegment(1, 0, W), ce); c++) send(0, c);
  const native = rp.allreduce(plane, theirs, ce * 4, EPOCH, STEP);
  const failed = await Promise.all([native, done]).then(
    () => false,
    (err: Error) => {
      fail(`${threads ? 'threads' : 'poll'} n=${n}: native rank: ${err.message}`);
      return true;
    },
  );
  if (failed) {
    close();
    return [checked, slow];
  }
  let bad = 0;
  for (let i = 0; i < n; i++) {
    const sum = (i % 7) + 0.5 + (i % 5) * 2;
    if (mine[i] !== sum || theirs[i] !== sum) bad++;
  }
  if (bad > 0) fail(`${threads ? 'threads' : 'poll'} n=${n}: ${bad} wrong elements`);
  close();
  return [checked, slow];
}

/** The native allreduce when rank 1's first message is `first` instead of its first chunk. */
async function broken(threads: number, first: Buffer | 'bye'): Promise<Error & { frame?: Buffer }> {
  const { plane, toNative, close } = await ring(threads);
  toNative.write(first === 'bye' ? Buffer.alloc(5) : prefixed(first));
  const err = await rp.allreduce(plane, new Float32Array(100), 64, EPOCH, STEP).then(
    () => new Error('resolved'),
    (e: Error) => e,
  );
  close();
  return err;
}

for (const threads of [0, 1]) {
  const mode = threads ? 'threads' : 'poll';
  for (const [n, ce] of [
    [1, 2],
    [13, 2],
    [1000, 64],
    [100_003, 1024],
  ]) {
    const [checked, slow] = await allreduce(threads, n, ce, 0);
    console.log(
      `${mode} n=${n} chunk=${ce}: ${checked} native frames decoded as expected, ${slow} JS frames in another encoding (native slow path)`,
    );
  }
  const abortMsg = encodeResponse({
    abort: { runId: RUN, generation: GENERATION, originRank: 1, reason: 4, message: 'stop' },
  });
  const a = await broken(threads, abortMsg);
  const decoded = a.frame && decodeResponse(a.frame);
  if (decoded?.kind !== 'abort' || decoded.abort.message !== 'stop') fail(`${mode}: abort: ${a.message}`);
  console.log(`${mode} abort: rejected (${a.message}); frame decodes to ${decoded?.kind}`);
  const h = header(1, 0, 0, 100, 16, 1); // sequence 1, the native rank is at 0
  const w = await broken(threads, frameOf(h, new Float32Array(16), false).subarray(5));
  const wd = w.frame && decodeResponse(w.frame);
  if (wd?.kind !== 'chunk' || wd.chunk.sequence !== 1) fail(`${mode}: wrong chunk: ${w.message}`);
  console.log(`${mode} chunk of sequence 1: rejected (${w.message}); frame decodes to ${wd?.kind}`);
  const b = await broken(threads, 'bye');
  if (b.frame || !/closed its data connection/.test(b.message)) fail(`${mode}: bye: ${b.message}`);
  console.log(`${mode} orderly close: rejected (${b.message})`);
}
console.log(failures === 0 ? 'wire-interop: ok' : `wire-interop: ${failures} failures`);
if (failures > 0) process.exit(1);
