/**
 * Interop check of the native data plane on the ring's own wire: RingAllreduce rings (transport
 * 'tcp') of W = 2, 3 and 4 ranks in this process, each rank on dataPlane 'native' or 'js'
 * (every rank native, every rank JavaScript, one rank native, one rank JavaScript, alternating).
 * Each ring runs the same allreduces, one after another on its sockets: lengths from 0 to
 * 1,000,003 (to 10,007 in chunks of 64 B, all in chunks of 1 MiB), and a span of a longer logical
 * array (tag.span). The inputs are seeded random floats, so the sums depend on the order of the
 * additions (checked: at W >= 3 a plain sum in rank order differs from the ring's somewhere):
 * every rank's result must equal, bit for bit, that rank's result in the pure-JavaScript ring. A native rank
 * receives JavaScript's frames and a JavaScript rank checks every field of the native frames
 * (allreduce-op.ts), so a header either plane writes differently fails the allreduce; and each
 * rank's stats() (frames and bytes sent and received) must equal the pure-JavaScript ring's.
 * Bench only: `node --import tsx bench/peers/native/wire-interop.ts` after scripts/setup-native.sh;
 * exit 1 on any mismatch, 2 when the addon is not built. wire-check-asan.sh runs it against a
 * build with AddressSanitizer and UBSan.
 */
import type { AllreduceTag, DataPlaneChoice } from '../../../src/collective/api.ts';
import { ringPlaneAddon } from '../../../src/collective/native-plane.ts';
import { Rng } from '../../../src/core/rng.ts';
import { startLocalRing } from '../../../test/collective/ring-harness.ts';

const missing = ringPlaneAddon();
if (typeof missing === 'string') {
  console.error(missing);
  process.exit(2);
}

type Plane = Exclude<DataPlaneChoice, 'auto'>;

/** One allreduce of the sequence every ring runs: n elements (or a span of a longer array). */
interface Case {
  n: number;
  tag: AllreduceTag;
}
const CASES: Case[] = [
  { n: 0, tag: { epoch: 0, step: 0 } },
  { n: 1, tag: { epoch: 0, step: 1 } },
  { n: 2, tag: { epoch: 1, step: 2 } },
  { n: 13, tag: { epoch: 2, step: 3 } },
  { n: 1000, tag: { epoch: 3, step: 1_234_567 } },
  { n: 10_007, tag: { epoch: 4, step: 5 } },
  { n: 1_000_003, tag: { epoch: 5, step: 6 } },
  { n: 777, tag: { epoch: 6, step: 7, span: { offset: 1000, total: 5000 } } },
];
const CHUNK_BYTES = [64, 1 << 20];
/** Longest case run in chunks of 64 B (a million elements there is minutes of frames). */
const SMALL_CHUNK_MAX_N = 10_007;

let failures = 0;
function fail(what: string): void {
  failures++;
  if (failures <= 10) console.error(`FAIL ${what}`);
}

const inputs = new Map<string, Float32Array>();
/** Rank r's input for case k: seeded, the same in every ring (callers copy it). */
function input(W: number, r: number, k: number): Float32Array {
  const key = `${W}-${r}-${k}`;
  let a = inputs.get(key);
  if (!a) {
    const rng = Rng.fromSeed(`wire-interop-${key}`);
    a = Float32Array.from({ length: CASES[k].n }, () => rng.uniform(-1000, 1000));
    inputs.set(key, a);
  }
  return a;
}

/** The cases run in chunks of `chunkBytes`. */
function casesFor(chunkBytes: number): number[] {
  return CASES.flatMap((c, k) => (chunkBytes > 64 || c.n <= SMALL_CHUNK_MAX_N ? [k] : []));
}

/** What one ring gave: each case's results per rank, and each rank's counters after them all. */
interface Outcome {
  results: Float32Array[][];
  counters: string[];
}

/** Runs every case on a ring of these planes. */
async function runRing(planes: Plane[], chunkBytes: number): Promise<Outcome | null> {
  const W = planes.length;
  const { rings, close } = await startLocalRing(W, {
    runId: 'interop-ü',
    generation: 7,
    chunkBytes,
    transport: 'tcp',
    perRank: (rank) => ({ dataPlane: planes[rank] }),
  });
  const label = `${planes.join(',')} chunk ${chunkBytes} B`;
  try {
    const got = rings.map((r) => r.dataPlane);
    if (got.join() !== planes.join()) {
      fail(`${label}: the rings run on ${got.join(',')}`);
      return null;
    }
    const results: Float32Array[][] = [];
    for (const k of casesFor(chunkBytes)) {
      const arrays = planes.map((_, r) => input(W, r, k).slice());
      const settled = await Promise.allSettled(
        rings.map((ring, r) => ring.allreduce(arrays[r], CASES[k].tag)),
      );
      const errors = settled.flatMap((s) => (s.status === 'rejected' ? [(s.reason as Error).message] : []));
      if (errors.length > 0) {
        fail(`${label} n=${CASES[k].n}: ${errors.join('; ')}`);
        return null;
      }
      results.push(arrays);
    }
    const counters = rings.map((ring) => {
      const { allreduces, bytesSent, bytesReceived, framesSent, framesReceived } = ring.stats();
      return JSON.stringify({ allreduces, bytesSent, bytesReceived, framesSent, framesReceived });
    });
    return { results, counters };
  } finally {
    await close();
  }
}

/** The plane assignments checked at world size W (the first is the pure-JavaScript reference). */
function assignments(W: number): Plane[][] {
  const all = (p: Plane): Plane[] => Array.from({ length: W }, () => p);
  const out: Plane[][] = [all('js'), all('native')];
  for (let r = 0; r < W; r++) {
    out.push(all('js').map((p, i) => (i === r ? 'native' : p)));
    if (W > 2) out.push(all('native').map((p, i) => (i === r ? 'js' : p)));
  }
  if (W === 4) out.push(['native', 'js', 'native', 'js']);
  return out;
}

const bits = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

for (const W of [2, 3, 4]) {
  for (const chunkBytes of CHUNK_BYTES) {
    const [reference, ...others] = assignments(W);
    const want = await runRing(reference, chunkBytes);
    if (!want) continue;
    const ks = casesFor(chunkBytes);
    if (W >= 3) {
      // The check can fail: a sum in another order than the ring's differs somewhere.
      const k = ks.indexOf(CASES.findIndex((c) => c.n === 1000));
      const plain = input(W, 0, ks[k]).map((_, i) => {
        let acc = 0;
        for (let r = 0; r < W; r++) acc = Math.fround(acc + input(W, r, ks[k])[i]);
        return acc;
      });
      if (bits(plain).equals(bits(want.results[k][0]))) fail(`W=${W}: the sums do not depend on the order`);
    }
    for (const planes of others) {
      const got = await runRing(planes, chunkBytes);
      if (!got) continue;
      let differ = 0;
      for (let k = 0; k < ks.length; k++) {
        for (let r = 0; r < W; r++) if (!bits(got.results[k][r]).equals(bits(want.results[k][r]))) differ++;
      }
      if (differ > 0) fail(`W=${W} ${planes.join(',')} chunk ${chunkBytes} B: ${differ} results differ`);
      // Both planes write the canonical frames, so every rank counts the same frames and bytes.
      const statsDiffer = got.counters.filter((c, r) => c !== want.counters[r]).length;
      for (let r = 0; r < W; r++) {
        if (got.counters[r] !== want.counters[r]) {
          fail(
            `W=${W} ${planes.join(',')} chunk ${chunkBytes} B rank ${r}: stats ${got.counters[r]}, pure js ${want.counters[r]}`,
          );
        }
      }
      console.log(
        `W=${W} [${planes.join(',')}] chunk ${chunkBytes} B: ${ks.length} allreduces, ${differ === 0 ? 'every rank bit-identical to the pure-js ring' : `${differ} (case, rank) results differ`}, ${statsDiffer === 0 ? 'same frame and byte counts' : `${statsDiffer} ranks count other frames or bytes`}`,
      );
    }
  }
}
console.log(failures === 0 ? 'wire-interop: ok' : `wire-interop: ${failures} failures`);
if (failures > 0) process.exit(1);
