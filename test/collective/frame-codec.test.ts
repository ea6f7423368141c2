import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import protobuf from 'protobufjs';
import {
  type ChunkHeader,
  decodeRequest,
  decodeResponse,
  encodeChunkFrame,
  encodeRequest,
  FrameDecodeError,
  FramePool,
  UINT_FIELDS,
} from '../../src/collective/internal.ts';
import { Rng } from '../../src/core/rng.ts';
import { bbn } from '../../src/generated/bbn.js';

/** A header with a mix of zero, small and 32-bit-wide values. */
function randomHeader(rng: Rng): ChunkHeader {
  const pick = (): number => [0, rng.int(128), rng.int(1 << 20), 0xffffffff - rng.int(1000)][rng.int(4)];
  const h: Record<string, number | string> = {
    runId: ['', 'r', 'run-ü-✓', 'x'.repeat(rng.int(300))][rng.int(4)],
  };
  for (const f of UINT_FIELDS) h[f] = pick();
  // Enums are int32 on the wire: only values below 2^31 encode the same as uint32.
  h.phase = rng.int(4);
  h.dtype = rng.int(4);
  return h as unknown as ChunkHeader;
}

function frameWithPayload(h: ChunkHeader, payload: Uint8Array): Buffer {
  const { frame, payloadAt } = encodeChunkFrame(h, payload.length);
  frame.set(payload, payloadAt);
  return frame;
}

describe('ring frame codec', () => {
  it('hand-framed chunks are byte-identical to the generated RingResponse encoding', () => {
    const rng = Rng.fromSeed('codec-identity');
    for (let i = 0; i < 500; i++) {
      const h = randomHeader(rng);
      const payload = Uint8Array.from({ length: 1 + rng.int(300) }, () => rng.int(256));
      const frame = frameWithPayload(h, payload);
      const viaGenerated = bbn.v1.RingResponse.decode(frame);
      const chunk = viaGenerated.chunk!;
      for (const f of UINT_FIELDS) assert.equal(chunk[f], h[f], `field ${f}`);
      assert.equal(chunk.runId, h.runId);
      assert.deepEqual(Buffer.from(chunk.payload!), Buffer.from(payload));
      const padding = chunk.alignmentPadding ?? new Uint8Array(0);
      assert.ok(padding.length <= 8 && padding.every((b) => b === 0), 'padding is a few zero bytes');
      const reencoded = bbn.v1.RingResponse.encode({
        chunk: { ...h, alignmentPadding: padding, payload },
      }).finish();
      assert.deepEqual(Buffer.from(reencoded), frame, `header ${JSON.stringify(h)}`);
    }
  });

  it('places the payload 4-byte aligned counting the 5-byte gRPC prefix', () => {
    const rng = Rng.fromSeed('codec-align');
    for (let i = 0; i < 500; i++) {
      const h = randomHeader(rng);
      const { frame, payloadAt } = encodeChunkFrame(h, 1 + rng.int(5000));
      assert.equal((5 + payloadAt) % 4, 0, `payloadAt ${payloadAt} for ${JSON.stringify(h)}`);
      assert.ok(frame.length > payloadAt);
    }
  });

  it('decodes generated encodings, in any field order and with unknown fields', () => {
    const rng = Rng.fromSeed('codec-decode');
    for (let i = 0; i < 200; i++) {
      const h = randomHeader(rng);
      const payload = Uint8Array.from({ length: 1 + rng.int(100) }, () => rng.int(256));
      const generated = bbn.v1.RingResponse.encode({ chunk: { ...h, payload } }).finish();
      const a = decodeResponse(generated);
      assert.equal(a.kind, 'chunk');
      if (a.kind !== 'chunk') return;
      for (const f of UINT_FIELDS) assert.equal(a.chunk[f], h[f]);
      assert.equal(a.chunk.runId, h.runId);
      assert.deepEqual(Buffer.from(a.chunk.payload), Buffer.from(payload));

      // Same values written backwards by hand, with unknown fields of every wire type mixed in.
      const inner = protobuf.Writer.create();
      inner.uint32((16 << 3) | 2).bytes(payload);
      inner.uint32((99 << 3) | 0).uint64(12345);
      for (let f = UINT_FIELDS.length - 1; f >= 0; f--) inner.uint32((f + 2) << 3).uint32(h[UINT_FIELDS[f]]);
      inner.uint32((100 << 3) | 1).fixed64(7);
      inner.uint32((101 << 3) | 5).fixed32(7);
      inner.uint32((1 << 3) | 2).string(h.runId);
      const outer = protobuf.Writer.create();
      outer.uint32((50 << 3) | 2).bytes(new Uint8Array([1, 2, 3]));
      outer.uint32((2 << 3) | 2).bytes(inner.finish());
      const b = decodeResponse(outer.finish());
      assert.deepEqual(b, a);
    }
  });

  it('decodes accept and abort control frames through the generated code', () => {
    const accept = decodeResponse(bbn.v1.RingResponse.encode({ accept: { runId: 'r', rank: 3 } }).finish());
    assert.equal(accept.kind, 'accept');
    assert.equal(accept.kind === 'accept' && accept.accept.rank, 3);
    const abort = decodeResponse(
      bbn.v1.RingResponse.encode({ abort: { originRank: 2, message: 'boom', reason: 1 } }).finish(),
    );
    assert.equal(abort.kind === 'abort' && abort.abort.message, 'boom');
    const hello = decodeRequest(encodeRequest({ hello: { runId: 'r', rank: 1, upstreamRank: 0 } }));
    assert.equal(hello.hello?.rank, 1);
    assert.equal(hello.abort, null);
  });

  it('rejects every truncation of a valid frame and arbitrary garbage with FrameDecodeError', () => {
    const frame = frameWithPayload(randomHeader(Rng.fromSeed('truncate')), new Uint8Array(64).fill(7));
    for (let len = 0; len < frame.length; len++) {
      assert.throws(() => decodeResponse(frame.subarray(0, len)), FrameDecodeError, `prefix of ${len} bytes`);
    }
    const rng = Rng.fromSeed('garbage');
    let rejected = 0;
    for (let i = 0; i < 3000; i++) {
      const junk = Uint8Array.from({ length: rng.int(64) }, () => rng.int(256));
      try {
        decodeResponse(junk);
      } catch (err) {
        assert.ok(
          err instanceof FrameDecodeError,
          `unexpected ${(err as Error).name}: ${(err as Error).message}`,
        );
        rejected++;
      }
      try {
        decodeRequest(junk);
      } catch (err) {
        assert.ok(
          err instanceof FrameDecodeError,
          `unexpected ${(err as Error).name}: ${(err as Error).message}`,
        );
      }
    }
    assert.ok(rejected > 2500, `only ${rejected} of 3000 garbage frames were rejected`);
    assert.throws(() => decodeResponse(new Uint8Array(0)), /sets no kind/);
    assert.throws(() => decodeRequest(new Uint8Array(0)), /exactly one kind/);
    const twoKinds = Buffer.concat([
      bbn.v1.RingResponse.encode({ accept: { rank: 1 } }).finish(),
      bbn.v1.RingResponse.encode({ abort: { originRank: 1 } }).finish(),
    ]);
    assert.throws(() => decodeResponse(twoKinds), /2 kinds/);
  });

  it('reuses released frame buffers', () => {
    const pool = new FramePool(1024);
    const a = pool.alloc(100);
    pool.release(a);
    const b = pool.alloc(200);
    assert.equal(b.buffer, a.buffer, 'the released buffer backs the next frame');
    assert.equal(b.length, 200);
    assert.equal(pool.alloc(5000).length, 5000, 'oversize frames are allocated directly');
  });
});
