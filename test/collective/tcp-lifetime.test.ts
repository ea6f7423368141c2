/**
 * The lifetime rule of the raw-TCP data plane's zero-copy sends: a chunk leaves as a view of the
 * caller's array, so an allreduce may resolve only once the kernel took every byte it wrote from
 * that array. The caller is then free to hand the array to another thread (the rank's compute
 * thread takes the gradient buffer back by transfer) or overwrite it at once.
 *
 * Made deterministic with the ring's test hooks: rank 1 stops reading right after its frame of
 * ring step 0, so rank 0's step-1 frame (one 16 MB write, more than the loopback socket buffers
 * take without a reader) stays partly in its socket's queue while rank 0 receives everything it
 * needs. Rank
 * 0's caller moves its array away by transfer and fills the moved memory with NaN the moment its
 * allreduce resolves; only after rank 0 has applied its last frame (and its resolution, if any,
 * has run) does rank 1 read again. A ring that resolved with writes pending sends NaN (checked
 * by making the sink report `busy = false`: 8 of 8 runs failed, with NaN in rank 1's sum or a
 * lost data connection).
 *
 * The same holds on failure: rank 0 aborts with its step-1 write pending (rank 1 holding); its
 * allreduce rejects only once no write views the array (the writes completed, or the data
 * connection was cut after the close grace and libuv cancelled them). Checked through the ring's
 * sink at the rejection (rank 1 fails on the abort of the control call before it would apply
 * the frame, so its data cannot show it); the earlier code, which rejected at once, fails it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CollectiveError, RingAbortedError, type RingAllreduce } from '../../src/collective/index.ts';
import { type FaultInjector, kFaultInjector } from '../../src/collective/internal.ts';
import { firstBitDifference } from './ring-data.ts';
import { startLocalRing } from './ring-harness.ts';

const CHUNK_BYTES = 16 << 20;
/** 32 MB per rank: two segments of 16 MB, one chunk (one write of the caller's array) each. */
const N = 8 << 20;
const CHUNKS_PER_SEGMENT = N / 2 / (CHUNK_BYTES / 4);

describe('ring allreduce - raw-TCP zero-copy sends', () => {
  it('resolve only once the kernel took the caller array: moving and overwriting it at once never reaches the wire', {
    timeout: 60_000,
  }, async () => {
    let releaseRank1!: () => void;
    const rank1Held = new Promise<void>((resolve) => {
      releaseRank1 = resolve;
    });
    let rank0Resolved = false;
    let resolvedWhileHeld = false;
    const hooks: Record<number, FaultInjector> = {
      // Rank 1 receives its ring-step-0 frames, then reads nothing until released.
      1: {
        afterReceive: (site) => {
          if (site.t !== 0 || site.frameIndex !== CHUNKS_PER_SEGMENT - 1) return undefined;
          return rank1Held;
        },
      },
      // Once rank 0 applied its last frame and any resolution of its allreduce has run, rank 1 reads on.
      0: {
        afterReceive: (site) => {
          if (site.frameIndex === 2 * CHUNKS_PER_SEGMENT - 1) {
            setImmediate(() => {
              resolvedWhileHeld = rank0Resolved;
              releaseRank1();
            });
          }
          return undefined;
        },
      },
    };
    const ring = await startLocalRing(2, {
      transport: 'tcp',
      chunkBytes: CHUNK_BYTES,
      perRank: (rank) => ({ [kFaultInjector]: hooks[rank] }),
    });
    try {
      // Small integers: every sum is exact, whatever the order of additions.
      const data = [0, 1].map((r) => new Float32Array(N).map((_, i) => ((i * 7 + r) % 1009) - 500));
      const want = new Float32Array(N).map((_, i) => data[0][i] + data[1][i]);
      const [r0, r1] = ring.rings;
      const done0 = r0.allreduce(data[0], { epoch: 1, step: 0 }).then(() => {
        rank0Resolved = true;
        // What the compute thread does with the gradient buffer: take it by transfer, write into it.
        const moved = new Float32Array(structuredClone(data[0].buffer, { transfer: [data[0].buffer] }));
        const ok = firstBitDifference(moved, want);
        moved.fill(Number.NaN);
        return ok;
      });
      const [diff0] = await Promise.all([done0, r1.allreduce(data[1], { epoch: 1, step: 0 })]);
      const diff1 = firstBitDifference(data[1], want);
      assert.equal(
        diff1,
        -1,
        `rank 1 differs from the reference at element ${diff1} (got ${data[1][diff1]}); rank 0 resolved ${resolvedWhileHeld ? 'before' : 'after'} rank 1 read on`,
      );
      assert.equal(diff0, -1, `rank 0 differs from the reference at element ${diff0}`);
    } finally {
      await ring.close();
    }
  });

  it('a failed allreduce rejects only once its writes are done or cancelled: the array moved at the rejection never reaches the wire', {
    timeout: 60_000,
  }, async () => {
    let releaseRank1!: () => void;
    const rank1Held = new Promise<void>((resolve) => {
      releaseRank1 = resolve;
    });
    let ring0: RingAllreduce | undefined;
    let pendingAtRejection: boolean | undefined;
    const hooks: Record<number, FaultInjector> = {
      1: {
        afterReceive: (site) =>
          site.t === 0 && site.frameIndex === CHUNKS_PER_SEGMENT - 1 ? rank1Held : undefined,
      },
      // Rank 0 has everything it needs but its step-1 frame is unread: it fails now.
      0: {
        afterReceive: (site) => {
          if (site.frameIndex === 2 * CHUNKS_PER_SEGMENT - 1)
            setImmediate(() => ring0?.abort('test: fails with a write pending'));
          return undefined;
        },
      },
    };
    const ring = await startLocalRing(2, {
      transport: 'tcp',
      chunkBytes: CHUNK_BYTES,
      perRank: (rank) => ({ [kFaultInjector]: hooks[rank] }),
    });
    try {
      ring0 = ring.rings[0];
      const data = [0, 1].map((r) => new Float32Array(N).map((_, i) => ((i * 7 + r) % 1009) - 500));
      const failed0 = ring.rings[0].allreduce(data[0], { epoch: 1, step: 0 }).then(
        () => assert.fail('rank 0 was aborted, yet its allreduce resolved'),
        (err: Error) => {
          // Nothing may still be written from the array (read through the ring's private sink:
          // rank 1 itself fails on the abort from the control call before it applies the frame).
          const sink = (ring0 as unknown as { dataOut: { busy: boolean } }).dataOut;
          pendingAtRejection = sink.busy;
          // The caller takes its array back and reuses it at once, then rank 1 reads on.
          new Float32Array(structuredClone(data[0].buffer, { transfer: [data[0].buffer] })).fill(Number.NaN);
          releaseRank1();
          return err;
        },
      );
      const failed1 = ring.rings[1].allreduce(data[1], { epoch: 1, step: 0 }).then(
        () => assert.fail('rank 1 resolved without rank 0'),
        (err: Error) => err,
      );
      const [err0, err1] = await Promise.all([failed0, failed1]);
      assert.equal(
        pendingAtRejection,
        false,
        "rank 0's allreduce rejected while a write of its array was pending",
      );
      assert.ok(err0 instanceof RingAbortedError, String(err0));
      assert.ok(err1 instanceof CollectiveError, String(err1));
      const nan = data[1].findIndex((v) => Number.isNaN(v));
      assert.equal(
        nan,
        -1,
        `rank 1 received NaN at element ${nan}: rank 0's array was read after its allreduce rejected`,
      );
    } finally {
      await ring.close();
    }
  });
});
