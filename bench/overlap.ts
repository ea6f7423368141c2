/**
 * Overlap of the ring allreduce with the backward pass (issue 16 item 3), measured on a real
 * BBN-ResNet-32 step at W = 2: two ranks in this process, each computing on its own worker thread
 * (bench/overlap-rank.ts, tfjs-node, 1 thread each), the two-rank ring (`transport` tcp) on this
 * main thread. Modes alternate round by round on the same ranks and ring:
 *   plain    the whole gradient is reduced after the step;
 *   overlap  segments are reduced as the backward pass finishes them (`StepOptionsBase.segments`).
 * Per step (rank 0's, median over the round): compute = the step's own time, exposed = what the
 * rank then waits for its reductions; `allreduce` = the plain mode's exposed time. Printed:
 * hidden fraction = 1 - exposed(overlap) / exposed(plain), the segmenting cost = compute(overlap)
 * - compute(plain), the net step time of each, and CPU seconds per step of the whole process (both
 * ranks and the ring; robust on a shared machine). The reduced gradients of both modes are
 * compared by digest: with W = 2 each element's sum is one float32 addition, the same in either
 * segmentation, so they must be identical.
 *
 * usage: node --import tsx bench/overlap.ts [--batch 32] [--steps 4] [--rounds 3] [--segment-kb 256]
 *        [--cost-rounds 4]
 */
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { CollectiveServer, RingAllreduce } from '../src/collective/index.ts';
import { arg } from './bbn-step-fixture.ts';

const batch = Number(arg('batch', '32'));
const steps = Number(arg('steps', '4'));
const rounds = Number(arg('rounds', '3'));
const segmentElements = (Number(arg('segment-kb', '256')) * 1024) / 4;
const W = 2;
process.env.TF_NUM_INTRAOP_THREADS = '1';
process.env.TF_NUM_INTEROP_THREADS = '1';
process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';

const servers = await Promise.all(
  Array.from({ length: W }, () => CollectiveServer.listen({ host: '127.0.0.1', port: 0 })),
);
const peers = servers.map((s) => s.address);
const rings = await Promise.all(
  servers.map((server, rank) =>
    RingAllreduce.create({
      runId: 'bench-overlap',
      generation: 1,
      rank,
      worldSize: W,
      peers,
      server,
      transport: 'tcp',
    }),
  ),
);

const entry = new URL('./overlap-rank.ts', import.meta.url).href;
const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}); });`;
type Done = { compute: number[]; exposed: number[]; segments: number[]; checksums: string[] };
const ranks = Array.from(
  { length: W },
  (_, rank) => new Worker(boot, { eval: true, workerData: { rank, batch, segmentElements } }),
);
const once = <T>(w: Worker, type: string): Promise<T> =>
  new Promise((resolve) => {
    const on = (m: { type: string }) => {
      if (m.type !== type) return;
      w.off('message', on);
      resolve(m as T);
    };
    w.on('message', on);
  });
const ready = await Promise.all(ranks.map((w) => once<{ numParams: number }>(w, 'ready')));
const numParams = ready[0].numParams;

// Each rank's reductions run on its ring one at a time, in the order the thread asked for them.
const seq = 0;
const allreduceMs: number[][] = [[], []];
ranks.forEach((w, rank) => {
  let chain = Promise.resolve();
  w.on('message', (m: { type: string; id: number; data: Float32Array }) => {
    if (m.type !== 'reduce') return;
    chain = chain.then(async () => {
      const t0 = performance.now();
      await rings[rank].allreduce(m.data, { epoch: 1, step: seq });
      allreduceMs[rank].push(performance.now() - t0);
      w.postMessage({ type: 'reduced', id: m.id, data: m.data }, [m.data.buffer as ArrayBuffer]);
    });
  });
});

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const cpuSeconds = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function round(mode: 'plain' | 'overlap'): Promise<{
  mode: string;
  compute: number;
  exposed: number;
  wall: number;
  cpu: number;
  segments: number;
  checksums: string[];
}> {
  const c0 = cpuSeconds();
  const t0 = performance.now();
  const done = await Promise.all(
    ranks.map((w) => {
      const p = once<Done>(w, 'done');
      w.postMessage({ type: 'run', mode, steps });
      return p;
    }),
  );
  const wall = (performance.now() - t0) / 1000 / steps;
  const cpu = (cpuSeconds() - c0) / steps;
  const r0 = done[0];
  return {
    mode,
    compute: median(r0.compute),
    exposed: median(r0.exposed),
    wall,
    cpu,
    segments: median(r0.segments),
    checksums: r0.checksums,
  };
}

console.log(
  `BBN-ResNet-32 step ${batch}+${batch} at 32x32x3, C=10, ${numParams} parameters (${((numParams * 4) / 1e6).toFixed(2)} MB of fp32 gradients), W=2 in one process (tfjs-node, 1 thread per rank), ring transport tcp, segments >= ${(segmentElements * 4) / 1024} KiB; ${steps} steps per round, ${rounds} rounds, modes interleaved`,
);
// Warm-up: one step of each mode (kernel set-up), not reported.
for (const mode of ['plain', 'overlap'] as const) {
  const ranksDone = ranks.map((w) => once<Done>(w, 'done'));
  for (const w of ranks) w.postMessage({ type: 'run', mode, steps: 1 });
  await Promise.all(ranksDone);
}
console.log(
  '| round | mode | compute ms | exposed allreduce ms | step ms (compute + exposed) | wall s/step (process) | CPU s/step (process) | segments |',
);
console.log('|---|---|---|---|---|---|---|---|');
const rows: Array<Awaited<ReturnType<typeof round>> & { round: number }> = [];
for (let r = 0; r < rounds; r++) {
  for (const mode of (r % 2 ? ['overlap', 'plain'] : ['plain', 'overlap']) as Array<'plain' | 'overlap'>) {
    const res = { ...(await round(mode)), round: r + 1 };
    rows.push(res);
    console.log(
      `| ${res.round} | ${mode} | ${res.compute.toFixed(0)} | ${res.exposed.toFixed(1)} | ${(res.compute + res.exposed).toFixed(0)} | ${res.wall.toFixed(2)} | ${res.cpu.toFixed(2)} | ${res.segments} |`,
    );
  }
}
console.log('\nPer round (ratios within a round):\n');
console.log(
  '| round | hidden fraction of the allreduce | segmenting cost ms (compute overlap - plain) | net step ms saved (plain - overlap) | CPU s/step overlap / plain |',
);
console.log('|---|---|---|---|---|');
for (let r = 1; r <= rounds; r++) {
  const p = rows.find((x) => x.round === r && x.mode === 'plain')!;
  const o = rows.find((x) => x.round === r && x.mode === 'overlap')!;
  console.log(
    `| ${r} | ${(1 - o.exposed / p.exposed).toFixed(2)} | ${(o.compute - p.compute).toFixed(0)} | ${(p.compute + p.exposed - o.compute - o.exposed).toFixed(0)} | ${(o.cpu / p.cpu).toFixed(2)} |`,
  );
}
// The model is not updated between steps, so every step of every round reduces the same gradient.
const digests = new Set(rows.flatMap((x) => x.checksums));
console.log(
  `\nreduced gradient (SHA-256 of all ${numParams} values, rank 0): ${digests.size === 1 ? 'identical in every step of both modes' : `${digests.size} different digests: the modes disagree`}`,
);
console.log(`\nallreduce ms per call (rank 0, median over the run): ${median(allreduceMs[0]).toFixed(1)}`);

// The cost of segmenting alone: rank 0 only (rank 1 idle), plain and taps steps alternating, no ring.
const costRounds = Number(arg('cost-rounds', '4'));
const plainMs: number[] = [];
const tapsMs: number[] = [];
const plainCpu: number[] = [];
const tapsCpu: number[] = [];
for (let r = 0; r < costRounds; r++) {
  for (const mode of (r % 2 ? ['taps', 'plain'] : ['plain', 'taps']) as Array<'plain' | 'taps'>) {
    const c0 = cpuSeconds();
    const p = once<Done>(ranks[0], 'done');
    ranks[0].postMessage({ type: 'run', mode: mode === 'plain' ? 'plainLocal' : 'taps', steps: 1 });
    const d = await p;
    (mode === 'plain' ? plainMs : tapsMs).push(d.compute[0]);
    (mode === 'plain' ? plainCpu : tapsCpu).push(cpuSeconds() - c0);
  }
}
console.log(
  `\ncost of segmenting (rank 0 alone, ${costRounds} steps each, alternating): step ${median(plainMs).toFixed(0)} ms plain vs ${median(tapsMs).toFixed(0)} ms segmented (${(median(tapsMs) / median(plainMs)).toFixed(3)}x); CPU ${median(plainCpu).toFixed(2)} vs ${median(tapsCpu).toFixed(2)} s (${(median(tapsCpu) / median(plainCpu)).toFixed(3)}x)`,
);
for (const w of ranks) w.postMessage({ type: 'exit' });
await Promise.all(ranks.map((w) => new Promise((r) => w.once('exit', r))));
await Promise.all(rings.map((r) => r.close()));
await Promise.all(servers.map((s) => s.close()));
