import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CollectiveConfigError,
  CollectiveServer,
  DEFAULT_KEEPALIVE_MS,
  RingAllreduce,
} from '../../src/collective/index.ts';
import { firstBitDifference, float64Sum, rankData, ringOrderSum } from './ring-data.ts';
import { allreduceAll, startLocalRing } from './ring-harness.ts';

/** Runs one allreduce of seeded inputs on every rank; returns inputs and outputs. */
async function sumOnce(
  rings: RingAllreduce[],
  n: number,
  seed: string,
  step: number,
): Promise<{ inputs: Float32Array[]; outputs: Float32Array[] }> {
  const inputs = rings.map((_, r) => rankData(seed, r, n));
  const outputs = inputs.map((x) => Float32Array.from(x));
  const results = await allreduceAll(rings, outputs, { epoch: 1, step });
  for (const [r, res] of results.entries()) assert.ok(res.ok, `rank ${r}: ${!res.ok && res.error.stack}`);
  return { inputs, outputs };
}

describe('ring allreduce - sums (W ranks in one process)', () => {
  for (let W = 1; W <= 5; W++) {
    it(`W=${W}: equals the ring-order float32 sum, bit for bit, on every rank, for lengths 0, 1, W-1, 1009, 10^6`, {
      timeout: 30_000,
    }, async (t) => {
      const ring = await startLocalRing(W);
      try {
        const lengths = [...new Set([0, 1, W - 1, 1009, 1_000_000])];
        for (const [k, n] of lengths.entries()) {
          const { inputs, outputs } = await sumOnce(ring.rings, n, `sum-${W}-${n}`, k);
          const exact = ringOrderSum(inputs);
          for (let r = 0; r < W; r++) {
            const at = firstBitDifference(outputs[r], exact);
            assert.equal(
              at,
              -1,
              `W=${W} n=${n} rank ${r}: element ${at} is ${outputs[r][at]}, expected ${exact[at]}`,
            );
          }
          // And within the recursive-summation bound of the float64 sum: (W-1) * 2^-24 * sum |x|.
          const { sum, abs } = float64Sum(inputs);
          let worst = 0;
          for (let i = 0; i < n; i++) {
            const bound = (W - 1) * 2 ** -24 * abs[i] + 2 ** -149;
            worst = Math.max(worst, Math.abs(outputs[0][i] - sum[i]) / bound);
          }
          assert.ok(worst <= 1, `W=${W} n=${n}: error ${worst}x the float32 summation bound`);
        }
        t.diagnostic(`W=${W}: ${ring.rings[0].stats().framesSent} frames sent by rank 0`);
      } finally {
        await ring.close();
      }
    });
  }

  it('gives bitwise identical sums for every chunk size', { timeout: 30_000 }, async () => {
    const W = 3;
    const cases: Array<[number, number[]]> = [
      [1009, [4, 12, 4096, 1 << 20]],
      [1_000_000, [64 << 10, 4 << 20]],
    ];
    for (const [n, chunkSizes] of cases) {
      const inputs = Array.from({ length: W }, (_, r) => rankData(`chunks-${n}`, r, n));
      let reference: Float32Array | null = null;
      for (const chunkBytes of chunkSizes) {
        const ring = await startLocalRing(W, { chunkBytes });
        try {
          const outputs = inputs.map((x) => Float32Array.from(x));
          const results = await allreduceAll(ring.rings, outputs, { epoch: 0, step: 0 });
          assert.ok(results.every((r) => r.ok));
          reference ??= outputs[0];
          for (let r = 0; r < W; r++) {
            const at = firstBitDifference(outputs[r], reference);
            assert.equal(at, -1, `n=${n} chunkBytes=${chunkBytes} rank ${r}: element ${at}`);
          }
        } finally {
          await ring.close();
        }
      }
    }
  });

  it('an array reduced piece by piece with spans gives the whole-array sum bit for bit at W=3 and 4, and without spans it would not', {
    timeout: 60_000,
  }, async (t) => {
    // The pieces a gradient is reduced in during the backward pass: from the end of the array
    // down, of uneven sizes, one inside a single segment, one across a segment boundary.
    for (const W of [3, 4]) {
      const n = 50_021;
      const cuts = [0, 3, 17_000, 17_001, 33_500, 49_990, n];
      for (const transport of ['tcp', 'grpc'] as const) {
        const ring = await startLocalRing(W, { chunkBytes: 4096, transport });
        try {
          const inputs = ring.rings.map((_, r) => rankData(`span-${W}`, r, n));
          const pieced = (span: boolean) => async () => {
            const outputs = inputs.map((x) => Float32Array.from(x));
            for (let k = cuts.length - 2; k >= 0; k--) {
              const [lo, hi] = [cuts[k], cuts[k + 1]];
              const results = await allreduceAll(
                ring.rings,
                outputs.map((o) => o.subarray(lo, hi)),
                { epoch: 0, step: k, span: span ? { offset: lo, total: n } : undefined },
              );
              assert.ok(
                results.every((r) => r.ok),
                `piece [${lo}, ${hi})`,
              );
            }
            return outputs;
          };
          const exact = ringOrderSum(inputs);
          const withSpans = await pieced(true)();
          for (let r = 0; r < W; r++) {
            const at = firstBitDifference(withSpans[r], exact);
            assert.equal(at, -1, `W=${W} ${transport} rank ${r}: element ${at}`);
          }
          // The same pieces cut by their own W-way partition sum in other rank orders.
          const differs = firstBitDifference((await pieced(false)())[0], exact);
          assert.notEqual(differs, -1, `W=${W}: pieces without spans happened to match`);
          t.diagnostic(`W=${W} ${transport}: without spans element ${differs} differs first`);
        } finally {
          await ring.close();
        }
      }
    }
  });

  it('with bf16 on the wire, pieces with spans (each with its share of the gradient prefix) give the whole allreduce bit for bit', {
    timeout: 30_000,
  }, async () => {
    const W = 3;
    const n = 30_011;
    const prefix = 25_000; // the gradient; the rest rides float32
    const cuts = [0, 9_000, 24_990, 25_000, n];
    const ring = await startLocalRing(W, { chunkBytes: 4096, compress: 'bf16' });
    try {
      const inputs = ring.rings.map((_, r) => rankData('span-bf16', r, n));
      const whole = inputs.map((x) => Float32Array.from(x));
      assert.ok(
        (await allreduceAll(ring.rings, whole, { epoch: 0, step: 0, bf16Elements: prefix })).every(
          (r) => r.ok,
        ),
      );
      const pieced = inputs.map((x) => Float32Array.from(x));
      for (let k = cuts.length - 2; k >= 0; k--) {
        const [lo, hi] = [cuts[k], cuts[k + 1]];
        const tag = {
          epoch: 0,
          step: 1 + k,
          bf16Elements: Math.max(0, Math.min(hi, prefix) - lo),
          span: { offset: lo, total: n },
        };
        const results = await allreduceAll(
          ring.rings,
          pieced.map((o) => o.subarray(lo, hi)),
          tag,
        );
        assert.ok(results.every((r) => r.ok));
      }
      for (let r = 0; r < W; r++) assert.equal(firstBitDifference(pieced[r], whole[r]), -1, `rank ${r}`);
      assert.notEqual(firstBitDifference(whole[0], ringOrderSum(inputs)), -1, 'bf16 was used');
    } finally {
      await ring.close();
    }
  });

  it('bf16 wire compression: ring-order sum with bf16 hops, measured error against float64', {
    timeout: 30_000,
  }, async (t) => {
    const W = 4;
    const n = 100_003;
    const ring = await startLocalRing(W, { compress: 'bf16', chunkBytes: 64 << 10 });
    try {
      // Positive inputs: relative error is meaningful without cancellation.
      const inputs = ring.rings.map((_, r) => rankData('bf16', r, n).map(Math.abs));
      const outputs = inputs.map((x) => Float32Array.from(x));
      const results = await allreduceAll(ring.rings, outputs, { epoch: 0, step: 0, bf16Elements: n });
      assert.ok(results.every((r) => r.ok));
      const exact = ringOrderSum(inputs, true);
      for (let r = 0; r < W; r++) assert.equal(firstBitDifference(outputs[r], exact), -1, `rank ${r}`);
      const { sum } = float64Sum(inputs);
      let worst = 0;
      for (let i = 0; i < n; i++)
        if (sum[i] > 0) worst = Math.max(worst, Math.abs(outputs[0][i] - sum[i]) / sum[i]);
      t.diagnostic(
        `bf16 W=${W}: max relative error vs float64 sum ${worst.toExponential(3)} (bound W*2^-8 = ${(W * 2 ** -8).toExponential(3)})`,
      );
      assert.ok(worst <= W * 2 ** -8, `max relative error ${worst}`);
      assert.ok(worst > 2 ** -10, 'bf16 really was used on the wire');
      const f32Bytes = ring.rings[0].stats().bytesSent;
      assert.ok(
        f32Bytes < (2 * (W - 1) * n * 4) / W / 2 + 100_000,
        `bf16 sends about half the bytes (${f32Bytes})`,
      );
    } finally {
      await ring.close();
    }
  });

  it('bf16 rounds only the tag.bf16Elements prefix (the gradients); the rest is the exact float32 sum', {
    timeout: 30_000,
  }, async () => {
    // W=4, 1024-element chunks, n = 12 chunks: every segment is 3 whole chunks; the prefix may
    // end on a chunk boundary or inside a chunk (then split: bf16 values first, float32 after).
    const W = 4;
    const chunk = 1024;
    const n = 12 * chunk;
    for (const transport of ['grpc', 'tcp'] as const) {
      const ring = await startLocalRing(W, { compress: 'bf16', chunkBytes: chunk * 4, transport });
      try {
        for (const [k, bf16Elements] of [
          [0, 5 * chunk],
          [1, 5001],
          [2, 0],
        ] as const) {
          const boundary = bf16Elements;
          const inputs = ring.rings.map((_, r) => rankData(`prefix-${k}`, r, n));
          const outputs = inputs.map((x) => Float32Array.from(x));
          const results = await allreduceAll(ring.rings, outputs, { epoch: 0, step: k, bf16Elements });
          assert.ok(results.every((r) => r.ok));
          const rounded = ringOrderSum(inputs, true);
          const exact = ringOrderSum(inputs);
          const expected = Float32Array.from(exact, (x, i) => (i < boundary ? rounded[i] : x));
          for (let r = 0; r < W; r++) {
            const at = firstBitDifference(outputs[r], expected);
            assert.equal(at, -1, `${transport} bf16Elements=${bf16Elements} rank ${r}: element ${at}`);
          }
          if (boundary > 0) assert.ok(firstBitDifference(outputs[0], exact) !== -1, 'bf16 was used');
        }
        // Ranks that disagree on the prefix fail with a protocol error instead of mixing precisions.
        const data = ring.rings.map(() => new Float32Array(n).fill(1));
        const mixed = await Promise.all(
          ring.rings.map((r, i) =>
            r.allreduce(data[i], { epoch: 1, step: 0, bf16Elements: i === 0 ? n : 0 }).then(
              () => null,
              (e: Error) => e,
            ),
          ),
        );
        assert.ok(mixed.some((e) => e?.name === 'ProtocolError' && /has dtype/.test(e.message)));
      } finally {
        await ring.close();
      }
    }
  });

  it('lets ranks enter the same allreduce at different times', { timeout: 30_000 }, async () => {
    const W = 3;
    const ring = await startLocalRing(W, { chunkBytes: 4096 });
    try {
      for (let step = 0; step < 4; step++) {
        const inputs = ring.rings.map((_, r) => rankData(`skew-${step}`, r, 5000));
        const outputs = inputs.map((x) => Float32Array.from(x));
        const late = step % W;
        const done = ring.rings.map((r, i) =>
          i === late
            ? new Promise<void>((resolve, reject) => {
                // This rank starts only after the others sent it their first frames.
                setTimeout(() => r.allreduce(outputs[i], { epoch: 0, step }).then(resolve, reject), 50);
              })
            : r.allreduce(outputs[i], { epoch: 0, step }),
        );
        await Promise.all(done);
        const exact = ringOrderSum(inputs);
        for (let r = 0; r < W; r++)
          assert.equal(firstBitDifference(outputs[r], exact), -1, `step ${step} rank ${r}`);
      }
      assert.equal(ring.rings[1].stats().allreduces, 4);
    } finally {
      await ring.close();
    }
  });

  it('rejects bad arguments with the field and value, without breaking the ring', {
    timeout: 30_000,
  }, async () => {
    const ring = await startLocalRing(2);
    try {
      const [r0] = ring.rings;
      await assert.rejects(
        r0.allreduce(new Float64Array(3) as unknown as Float32Array, { epoch: 0, step: 0 }),
        {
          name: 'CollectiveConfigError',
          message: /Float32Array, got Float64Array/,
        },
      );
      await assert.rejects(
        r0.allreduce(new Float32Array(3), { epoch: -1, step: 0 }),
        /allreduce\(tag\).*"epoch":-1/,
      );
      await assert.rejects(
        r0.allreduce(new Float32Array(3), { epoch: 0, step: 0, span: { offset: 8, total: 10 } }),
        /allreduce\(tag\)\.span \(\{"offset":8,"total":10\}\).*offset \+ data.length \(3\) <= total/,
      );
      const { outputs } = await sumOnce(ring.rings, 10, 'after-bad-args', 0);
      assert.equal(outputs[0].length, 10);
    } finally {
      await ring.close();
    }
    const base = { runId: 'r', generation: 0, rank: 0, worldSize: 2, peers: ['127.0.0.1:1', '127.0.0.1:2'] };
    const bad: Array<[object, RegExp]> = [
      [{ runId: '' }, /runId \(""\)/],
      [{ worldSize: 0, peers: [] }, /worldSize \(0\)/],
      [{ rank: 2 }, /rank \(2\) must be an integer in \[0, 1\]/],
      [{ peers: ['a:1'] }, /peers has 1 entries, expected worldSize \(2\)/],
      [{ peers: ['a:1', 'nohost'] }, /peers\[1\] \("nohost"\)/],
      [{ chunkBytes: 6 }, /chunkBytes \(6\)/],
      [{ compress: 'zstd' }, /compress \("zstd"\)/],
      [{ timeoutMs: 0 }, /timeoutMs \(0\)/],
      [{ keepaliveMs: -5 }, /keepaliveMs \(-5\)/],
    ];
    for (const [patch, message] of bad) {
      await assert.rejects(RingAllreduce.create({ ...base, ...patch } as never), (err: Error) => {
        assert.ok(err instanceof CollectiveConfigError, `${JSON.stringify(patch)}: ${err.name}`);
        assert.match(err.message, message);
        return true;
      });
    }
    // One keepalive for both ends of an edge: a ring on a shared server takes the server's.
    const server = await CollectiveServer.listen({ host: '127.0.0.1', port: 0 }, { keepaliveMs: 30_000 });
    try {
      assert.equal(server.keepaliveMs, 30_000);
      await assert.rejects(
        RingAllreduce.create({ ...base, peers: [server.address, '127.0.0.1:2'], server, keepaliveMs: 5_000 }),
        (err: Error) => {
          assert.ok(err instanceof CollectiveConfigError, err.name);
          assert.match(
            err.message,
            /keepaliveMs \(5000\) differs from the peer server's keepaliveMs \(30000\)/,
          );
          return true;
        },
      );
    } finally {
      await server.close();
    }
    await assert.rejects(CollectiveServer.listen({ host: '127.0.0.1', port: 0 }, { keepaliveMs: 0 }), {
      name: 'CollectiveConfigError',
      message: /CollectiveServerOptions.keepaliveMs \(0\)/,
    });
    const plain = await CollectiveServer.listen({ host: '127.0.0.1', port: 0 });
    await plain.close();
    assert.equal(plain.keepaliveMs, DEFAULT_KEEPALIVE_MS);
  });
});
