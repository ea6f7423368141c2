/**
 * Self-check of the native ring prototype (ring_plane.c): W planes in this one process, connected
 * in a ring on loopback, sum arrays of awkward lengths (empty, fewer elements than ranks, not a
 * multiple of the chunk, many chunks) in both modes, and every element of every rank's result
 * is compared with the exact sum. Small integers and halves keep float32 sums exact.
 * Bench only: `node --import tsx bench/peers/native/check.ts` after bench/peers/native/build.sh.
 * W stays <= 4: each rank's allreduce holds one of libuv's 4 pool threads until the ring is done.
 */
import { nativeAddon } from './addon.ts';

const rp = nativeAddon();

let failures = 0;
for (const W of [2, 3, 4]) {
  for (const threads of [0, 1]) {
    const planes = Array.from({ length: W }, (_, r) => rp.listen(r, W, 0, threads));
    for (let r = 0; r < W; r++) rp.connect(planes[r][0], planes[(r + 1) % W][1]);
    for (const [p] of planes) rp.accept(p);
    for (const [n, chunkBytes] of [
      [0, 8],
      [2, 8],
      [13, 8],
      [1_000_003, 4096],
      [3_000_001, 1 << 20],
    ]) {
      const arrays = planes.map((_, r) => Float32Array.from({ length: n }, (_, i) => (i % 7) + r / 2));
      await Promise.all(planes.map(([p], r) => rp.allreduce(p, arrays[r], chunkBytes)));
      let bad = 0;
      for (const a of arrays) {
        for (let i = 0; i < n; i++) if (a[i] !== W * (i % 7) + (W * (W - 1)) / 4) bad++;
      }
      if (bad > 0) failures++;
      console.log(
        `W=${W} ${threads ? 'threads' : 'poll'} n=${n} chunk=${chunkBytes} B: ${bad === 0 ? 'ok' : `${bad} wrong elements`}`,
      );
    }
    for (const [p] of planes) rp.close(p);
  }
}
if (failures > 0) process.exit(1);
