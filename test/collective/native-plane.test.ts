/**
 * The native data plane (src/collective/native-plane.ts, native/ring-plane) through the ring's
 * public API. The other ring tests (sums, aborts, timeouts, lost processes, close) run on it too:
 * 'auto' is native where it is built, and the first test here fails if it is not, so that they
 * cannot silently fall back to the JavaScript plane. These tests cover what is particular to it:
 * the same bits as the JavaScript plane (spans, mixed rings and bf16 on the wire included), its own
 * threads, a cancel of an allreduce blocked in C, the connections it borrows, and the choice of
 * plane.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { type AllreduceTag, CollectiveConfigError, RingAbortedError } from '../../src/collective/index.ts';
import {
  decodeResponse,
  encodeChunkFrame,
  type FaultInjector,
  kFaultInjector,
} from '../../src/collective/internal.ts';
import { ringPlaneAddon } from '../../src/collective/native-plane.ts';
import { firstBitDifference, firstValueDifference, rankData, ringOrderSum } from './ring-data.ts';
import { allreduceAll, type LocalRingOptions, startLocalRing } from './ring-harness.ts';

/** Bit patterns bf16 must carry as bf16.ts does (f32BitsToBf16): ties, overflow, NaNs, zeros, subnormals. */
const BF16_EDGES = [
  0x3f808000, // half way between two bf16 values, even below: rounds down
  0x3f818000, // half way, odd below: rounds up
  0x7f7fffff, // the largest float32: rounds to +inf
  0xff7f8000, // rounds to -inf
  0x7f800000, // +inf
  0x7fc00001, // a quiet NaN with a payload
  0x7f800001, // a signalling NaN: quieted, not inf
  0xffa00000, // a negative signalling NaN
  0x80000000, // -0
  0x00000001, // the smallest subnormal
  0x807fffff, // the largest negative subnormal
];

/**
 * Every rank's input for bf16 rings of W ranks: seeded normals with BF16_EDGES at every 97th
 * element from the rank (so no element is special on two ranks: which NaN two NaNs add to is the
 * hardware's choice, not the wire's). Callers copy them.
 */
function bf16Inputs(W: number, n: number): Float32Array[] {
  return Array.from({ length: W }, (_, rank) => {
    const x = rankData(`bf16-${W}-${n}`, rank, n);
    const bits = new Uint32Array(x.buffer);
    for (let i = rank; i < n; i += 97) bits[i] = BF16_EDGES[(i + rank) % BF16_EDGES.length];
    return x;
  });
}

/**
 * Every rank's output of one allreduce of fresh copies of `inputs` per entry of `prefixes`, piece
 * by piece with spans. An entry is the number of leading elements sent as bf16 (on a ring with
 * compress 'bf16'; each piece's bf16Elements its share of it, as trainer.ts passes it), or
 * undefined for none.
 */
async function pieceSums(
  inputs: readonly Float32Array[],
  options: LocalRingOptions,
  pieces: number,
  prefixes: readonly (number | undefined)[],
): Promise<{ outputs: Float32Array[][]; planes: string[]; stats: unknown[] }> {
  const n = inputs[0].length;
  const ring = await startLocalRing(inputs.length, options);
  try {
    const outputs: Float32Array[][] = [];
    for (const [call, prefix] of prefixes.entries()) {
      const data = inputs.map((x) => Float32Array.from(x));
      for (let k = 0; k < pieces; k++) {
        const lo = Math.floor((k * n) / pieces);
        const hi = Math.floor(((k + 1) * n) / pieces);
        const tag: AllreduceTag = {
          epoch: 5,
          step: call * pieces + k,
          bf16Elements: prefix === undefined ? undefined : Math.max(0, Math.min(hi - lo, prefix - lo)),
          span: pieces > 1 ? { offset: lo, total: n } : undefined,
        };
        const results = await allreduceAll(
          ring.rings,
          data.map((x) => x.subarray(lo, hi)),
          tag,
        );
        for (const [r, res] of results.entries())
          assert.ok(res.ok, `rank ${r}: ${!res.ok && res.error.stack}`);
      }
      outputs.push(data);
    }
    return {
      outputs,
      planes: ring.rings.map((r) => r.dataPlane),
      stats: ring.rings.map((r) => {
        const { seconds: _s, lastSeconds: _l, ...counts } = r.stats();
        return counts;
      }),
    };
  } finally {
    await ring.close();
  }
}

/**
 * pieceSums on a JavaScript-plane ring, a native one and a mixed one (even ranks on `evenRanks`'
 * plane, odd ones on the other), each checked to have run on the planes it asked for.
 */
async function onEachPlane(
  inputs: readonly Float32Array[],
  options: LocalRingOptions,
  pieces: number,
  prefixes: readonly (number | undefined)[],
  evenRanks: 'js' | 'native',
  what: string,
) {
  const odd = evenRanks === 'js' ? 'native' : 'js';
  const js = await pieceSums(inputs, { ...options, dataPlane: 'js' }, pieces, prefixes);
  const native = await pieceSums(inputs, { ...options, dataPlane: 'native' }, pieces, prefixes);
  const perRank = (rank: number) => ({ dataPlane: rank % 2 === 0 ? evenRanks : odd });
  const mixed = await pieceSums(inputs, { ...options, perRank }, pieces, prefixes);
  assert.ok(
    js.planes.every((p) => p === 'js'),
    what,
  );
  assert.ok(
    native.planes.every((p) => p === 'native'),
    what,
  );
  assert.deepEqual(
    mixed.planes,
    mixed.planes.map((_, r) => perRank(r).dataPlane),
    what,
  );
  return { js, native, mixed };
}

/** Open descriptors of this process. */
function openDescriptors(): number {
  return readdirSync('/proc/self/fd').length;
}

describe('ring allreduce - the native data plane', () => {
  it('is built, and tcp rings use it by default', { timeout: 20_000 }, async () => {
    assert.equal(typeof ringPlaneAddon(), 'object', String(ringPlaneAddon()));
    const ring = await startLocalRing(2);
    try {
      assert.deepEqual(
        ring.rings.map((r) => r.dataPlane),
        ['native', 'native'],
      );
    } finally {
      await ring.close();
    }
  });

  it('gives the JavaScript plane`s bits and counters at W=2-4, with chunks of 4 KiB and 4 MiB, whole and by spans, and in mixed rings', {
    timeout: 120_000,
  }, async () => {
    for (const W of [2, 3, 4]) {
      for (const [n, chunkBytes, pieces] of [
        [1, 4096, 1],
        [W + 1, 4096, 1],
        [300_007, 4096, 1],
        [300_007, 4096, 7],
        [2_000_003, undefined, 1],
        [2_000_003, undefined, 3],
      ] as const) {
        const what = `W=${W} n=${n} chunkBytes=${chunkBytes ?? 'default'} pieces=${pieces}`;
        const inputs = Array.from({ length: W }, (_, r) => rankData(`native-${W}-${n}`, r, n));
        const { js, native, mixed } = await onEachPlane(
          inputs,
          { chunkBytes },
          pieces,
          [undefined],
          'native',
          what,
        );
        const expected = Buffer.from(ringOrderSum(inputs).buffer);
        for (let r = 0; r < W; r++) {
          assert.ok(Buffer.from(js.outputs[0][r].buffer).equals(expected), `${what}: js rank ${r}`);
          assert.ok(Buffer.from(native.outputs[0][r].buffer).equals(expected), `${what}: native rank ${r}`);
          assert.ok(Buffer.from(mixed.outputs[0][r].buffer).equals(expected), `${what}: mixed rank ${r}`);
        }
        assert.deepEqual(native.stats, js.stats, `${what}: counters`);
      }
    }
  });

  it('with bf16 on the wire gives the JavaScript plane`s bits and counters: any bf16 prefix, W=2-4, chunks of 4 KiB and 4 MiB, spans, mixed rings', {
    timeout: 120_000,
  }, async () => {
    for (const W of [2, 3, 4]) {
      // Prefixes: none, a few elements, ending inside a chunk (4 KiB chunks are 1024 elements;
      // a default one, 4 MiB, holds a whole segment here), inside a segment, and all.
      for (const [n, chunkBytes, pieces, prefixes] of [
        [W + 1, 4096, 1, [0, 1, W + 1]],
        [100_003, 4096, 1, [0, 3, 1537, 50_001, 100_003]],
        [100_003, 4096, 5, [3, 50_001, 100_003]],
        [300_007, undefined, 1, [0, 150_001, 300_007]],
        [300_007, undefined, 3, [150_001]],
      ] as const) {
        const what = `W=${W} n=${n} chunkBytes=${chunkBytes ?? 'default'} pieces=${pieces}`;
        const inputs = bf16Inputs(W, n);
        const bf16 = { compress: 'bf16', chunkBytes } as const;
        const { js, native, mixed } = await onEachPlane(inputs, bf16, pieces, prefixes, 'js', what);
        const wire = ringOrderSum(inputs, true);
        const exact = ringOrderSum(inputs, false);
        for (const [call, prefix] of prefixes.entries()) {
          // The reference: the prefix rounded at every hop and at the owner, the rest exact.
          const expected = Float32Array.from(exact, (x, i) => (i < prefix ? wire[i] : x));
          const jsOut = js.outputs[call][0];
          const at = firstValueDifference(jsOut, expected);
          assert.equal(
            at,
            -1,
            `${what} prefix=${prefix}: js element ${at} is ${jsOut[at]}, not ${expected[at]}`,
          );
          for (let r = 0; r < W; r++) {
            for (const [plane, out] of [
              ['js', js.outputs[call][r]],
              ['native', native.outputs[call][r]],
              ['mixed', mixed.outputs[call][r]],
            ] as const) {
              const bit = firstBitDifference(out, jsOut);
              assert.equal(bit, -1, `${what} prefix=${prefix}: ${plane} rank ${r} element ${bit}`);
            }
          }
        }
        assert.deepEqual(native.stats, js.stats, `${what}: counters native`);
        assert.deepEqual(mixed.stats, js.stats, `${what}: counters mixed`);
      }
    }
  });

  it('names a bf16 chunk it refused as the JavaScript plane does: the field that differs', {
    timeout: 20_000,
  }, async () => {
    // Rank 0 (JavaScript, with the injector) sends its second frame, a bf16 chunk, 4 bytes short.
    const short: FaultInjector = {
      beforeSend: (site, frame) => {
        if (site.sequence !== 0 || site.frameIndex !== 1) return frame;
        const msg = decodeResponse(frame);
        if (msg.kind !== 'chunk') return frame;
        const { payload, ...header } = msg.chunk;
        const out = encodeChunkFrame(header, payload.length - 4);
        out.frame.set(payload.subarray(0, payload.length - 4), out.payloadAt);
        return out.frame;
      },
    };
    const messages: string[] = [];
    for (const plane of ['js', 'native'] as const) {
      const ring = await startLocalRing(2, {
        compress: 'bf16',
        chunkBytes: 4096,
        perRank: (rank) => (rank === 0 ? { [kFaultInjector]: short } : { dataPlane: plane }),
      });
      try {
        assert.equal(ring.rings[1].dataPlane, plane);
        const data = ring.rings.map(() => new Float32Array(10_000).fill(1));
        const [, r1] = await allreduceAll(ring.rings, data, { epoch: 0, step: 0, bf16Elements: 6_000 });
        assert.ok(!r1.ok && r1.error.name === 'ProtocolError', !r1.ok ? r1.error.stack : 'rank 1');
        messages.push(r1.error.message.replace(/:\d+\)/g, ':PORT)'));
      } finally {
        await ring.close();
      }
    }
    assert.match(messages[0], /frame 1 \(ring step 0, chunk 1\) .* has payload bytes 2044, expected 2048/);
    assert.equal(messages[1], messages[0]);
  });

  it('takes another encoding of a bf16 chunk (an unknown field appended) and sums it to the JavaScript plane`s bits', {
    timeout: 20_000,
  }, async () => {
    // Rank 0 (JavaScript) appends field 20 (a varint) to every message: rank 1 (native) receives
    // each chunk of every step (reduce, the owner's rounding, all-gather) through the classifier.
    const unknownField = Buffer.from([0xa0, 0x01, 0x05]);
    const longer: FaultInjector = { beforeSend: (_site, frame) => Buffer.concat([frame, unknownField]) };
    const inputs = bf16Inputs(3, 10_000);
    const outputs: Float32Array[][] = [];
    for (const injected of [false, true]) {
      const ring = await startLocalRing(3, {
        compress: 'bf16',
        chunkBytes: 4096,
        perRank: (rank) =>
          !injected
            ? { dataPlane: 'js' }
            : rank === 0
              ? { [kFaultInjector]: longer }
              : { dataPlane: 'native' },
      });
      try {
        const data = inputs.map((x) => Float32Array.from(x));
        const out = await allreduceAll(ring.rings, data, { epoch: 0, step: 0, bf16Elements: 5_000 });
        for (const [r, o] of out.entries()) assert.ok(o.ok, `rank ${r}: ${!o.ok && o.error.stack}`);
        if (injected)
          assert.deepEqual(
            ring.rings.map((r) => r.dataPlane),
            ['js', 'native', 'native'],
          );
        outputs.push(data);
      } finally {
        await ring.close();
      }
    }
    for (let r = 0; r < 3; r++)
      assert.equal(firstBitDifference(outputs[1][r], outputs[0][r]), -1, `rank ${r}`);
  });

  it('runs each allreduce on a thread of its own: 6 ranks in one process with 2 libuv pool threads', {
    timeout: 60_000,
  }, () => {
    // An allreduce on a libuv pool thread waits for its neighbours; with fewer pool threads than
    // ranks in the process, the ranks not yet started would wait for a pool thread forever.
    const script = `
      import { startLocalRing, allreduceAll } from './test/collective/ring-harness.ts';
      const ring = await startLocalRing(6, { dataPlane: 'native', timeoutMs: 20000 });
      const data = ring.rings.map((_, r) => new Float32Array(1 << 20).fill(r + 1));
      for (let k = 0; k < 3; k++) {
        const out = await allreduceAll(ring.rings, data, { epoch: 0, step: k });
        for (const o of out) if (!o.ok) throw o.error;
      }
      await ring.close();
      console.log(JSON.stringify([ring.rings.map((r) => r.dataPlane), data.map((d) => d[12345])]));
    `;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', script], {
      env: { ...process.env, UV_THREADPOOL_SIZE: '2' },
      encoding: 'utf8',
      timeout: 50_000,
    });
    const [planes, values] = JSON.parse(out.trim().split('\n').at(-1)!) as [string[], number[]];
    assert.deepEqual(planes, Array(6).fill('native'));
    // 1+2+4+... : after k allreduces each element is 21 * 6^(k-1), i.e. 21 * 36 after three.
    assert.deepEqual(values, Array(6).fill(21 * 36));
  });

  it('an abort reaches allreduces blocked in C: every rank fails naming the origin, and the ring closes in order', {
    timeout: 30_000,
  }, async () => {
    const ring = await startLocalRing(3, { dataPlane: 'native' });
    try {
      const data = ring.rings.map(() => new Float32Array(1 << 20).fill(1));
      // Rank 2 never starts: ranks 0 and 1 stay in flight inside the plane, whatever the timing.
      const pending = ring.rings.slice(0, 2).map((r, i) =>
        r.allreduce(data[i], { epoch: 0, step: 0 }).then(
          () => null,
          (e: Error) => e,
        ),
      );
      const t0 = performance.now();
      ring.rings[0].abort('operator stop');
      const [e0, e1] = await Promise.all(pending);
      const took = performance.now() - t0;
      for (const e of [e0, e1]) {
        assert.ok(e instanceof RingAbortedError, String(e));
        assert.equal(e.originRank, 0);
        assert.match(e.message, /operator stop/);
      }
      assert.ok(took < 2_000, `the blocked allreduces took ${took} ms to fail`);
      await assert.rejects(ring.rings[2].allreduce(data[2], { epoch: 0, step: 0 }), RingAbortedError);
    } finally {
      await ring.close();
    }
  });

  it('gives the borrowed connections back: close after allreduces and during one leaves no descriptor open', {
    timeout: 30_000,
  }, async () => {
    const before = openDescriptors();
    for (const during of [false, true]) {
      const ring = await startLocalRing(3, { dataPlane: 'native' });
      const data = ring.rings.map(() => new Float32Array(100_000).fill(2));
      const out = await allreduceAll(ring.rings, data, { epoch: 0, step: 0 });
      assert.ok(out.every((o) => o.ok));
      assert.equal(data[1][99_999], 6);
      const late = during
        ? ring.rings[0].allreduce(data[0], { epoch: 0, step: 1 }).catch((e: Error) => e)
        : null;
      await ring.close();
      if (late) assert.match(String(await late), /ring closed during an allreduce/);
    }
    assert.equal(openDescriptors(), before);
  });

  it("'native' where it cannot run is a config error naming the reason; 'auto' falls back (and takes bf16); a bad value is refused", {
    timeout: 30_000,
  }, async () => {
    await assert.rejects(startLocalRing(2, { dataPlane: 'native', transport: 'grpc' }), {
      name: 'CollectiveConfigError',
      message: /dataPlane is 'native' but transport is 'grpc'/,
    });
    await assert.rejects(
      startLocalRing(2, { dataPlane: 'bogus' as never }),
      (e: Error) => e instanceof CollectiveConfigError && /dataPlane \("bogus"\) must be/.test(e.message),
    );
    // bf16 on the wire runs natively too.
    const bf16 = await startLocalRing(2, { compress: 'bf16' });
    try {
      assert.deepEqual(
        bf16.rings.map((r) => r.dataPlane),
        ['native', 'native'],
      );
    } finally {
      await bf16.close();
    }
    // Without the addon (a process where it cannot load): 'auto' runs on JavaScript, 'native' says why.
    const script = `
      import { startLocalRing } from './test/collective/ring-harness.ts';
      const auto = await startLocalRing(2);
      console.log(auto.rings.map((r) => r.dataPlane).join(','));
      await auto.close();
      await startLocalRing(2, { dataPlane: 'native' }).catch((e) => console.log(e.name + ': ' + e.message));
    `;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', script], {
      env: { ...process.env, BBN_RING_PLANE_ADDON: '/nonexistent/ring_plane.node' },
      encoding: 'utf8',
      timeout: 25_000,
    });
    const [planes, refusal] = out.trim().split('\n');
    assert.equal(planes, 'js,js');
    assert.match(
      refusal,
      /^CollectiveConfigError: RingAllreduceOptions.dataPlane is 'native' but the native data plane is not built \(\/nonexistent\/ring_plane.node: .*\); run scripts\/setup-native.sh$/,
    );
  });
});
