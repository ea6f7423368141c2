/**
 * Overlap of the ring allreduce with the backward pass (issue 16 item 3), measured on the path
 * that ships: W = 2 ranks in this process, each a real compute thread (`ComputeThread`, the
 * rank runtime of `bbn train --workers`, tfjs-node, 1 thread each) training a BBN-ResNet-32 on
 * synthetic 32x32x3 images, each with the two-rank tcp ring on this main thread served as
 * src/orchestration/local.ts serves it. Two worlds, one per mode, take turns round by round:
 *   plain    `distributed.overlapSegmentBytes: 0`, the whole wire is reduced after the step;
 *   overlap  `distributed.overlapSegmentBytes: S`, each gradient segment is reduced as soon as the
 *            backward pass finished it, the trainer's sums after the step.
 * Per step (rank 0's StepReports, median over the round): compute = the step's own time, exposed =
 * what the rank then waits for its reductions (`reduceSeconds`). Printed: the hidden fraction
 * 1 - exposed(overlap) / exposed(plain), the net step time of each, CPU seconds per step of the
 * whole process (both ranks and the ring; robust on a shared machine), and whether both worlds
 * hold the same weights after every round (they must: at W = 2 each element is one float32
 * addition, and pieces keep the whole wire's ring order at any W).
 *
 * usage: node --import tsx bench/overlap.ts [--batch 64] [--steps 4] [--rounds 3] [--segment-kb 512]
 *        [--data-plane auto|native|js]
 *        (--batch is the global batch: each rank computes batch/2 + batch/2 images; --data-plane is
 *        the ring's, RingAllreduceOptions.dataPlane, default auto)
 *
 * The third round's numbers in docs/performance.md were made by an earlier form of this bench with
 * its own thread protocol (`git show c901925:bench/overlap.ts`), before overlap was wired into the
 * rank runtime.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { DataPlaneChoice } from '../src/collective/api.ts';
import { CollectiveServer, RingAllreduce } from '../src/collective/index.ts';
import { parseRunConfig } from '../src/core/config.ts';
import { carriesStopVote } from '../src/worker/process/compute-protocol.ts';
import { ComputeThread } from '../src/worker/process/compute-thread.ts';
import type { StepReport } from '../src/worker/trainer.ts';
import { arg } from './bbn-step-fixture.ts';

const batch = Number(arg('batch', '64'));
const steps = Number(arg('steps', '4'));
const rounds = Number(arg('rounds', '3'));
const segmentBytes = Number(arg('segment-kb', '512')) * 1024;
const dataPlane = arg('data-plane', 'auto') as DataPlaneChoice;
const W = 2;
const MODES = ['plain', 'overlap'] as const;
type Mode = (typeof MODES)[number];

const dirs: string[] = [];
const cfgFor = (mode: Mode) =>
  parseRunConfig({
    name: 'bench-overlap',
    seed: 1,
    dataset: {
      kind: 'synthetic',
      numClasses: 10,
      perClass: Math.ceil((batch * (steps * rounds + 2)) / 4),
      testPerClass: 2,
      imageSize: 32,
      channels: 3,
      imbalanceRatio: 4,
    },
    model: { depth: 32, baseWidth: 16 },
    train: { epochs: rounds + 1, batchSize: batch, lr: 0.01 },
    compute: { backend: 'tensorflow', threads: 1 },
    distributed: { workers: W, overlapSegmentBytes: mode === 'overlap' ? segmentBytes : 0 },
  });

/** One world of W compute threads and its ring. */
async function openWorld(mode: Mode) {
  const cfg = cfgFor(mode);
  const outDir = mkdtempSync(join(tmpdir(), `bench-overlap-${mode}-`));
  dirs.push(outDir);
  const threads = await Promise.all(
    Array.from({ length: W }, () => ComputeThread.open({ cfg, outDir }).then((o) => o.thread)),
  );
  await Promise.all(threads.map((t, rank) => t.start({ rank, worldSize: W, checkpointUri: '' })));
  const servers = await Promise.all(
    threads.map(() => CollectiveServer.listen({ host: '127.0.0.1', port: 0 })),
  );
  const rings = await Promise.all(
    servers.map((server, rank) =>
      RingAllreduce.create({
        runId: `bench-overlap-${mode}`,
        generation: 1,
        rank,
        worldSize: W,
        peers: servers.map((s) => s.address),
        server,
        transport: 'tcp',
        dataPlane,
      }),
    ),
  );
  return { mode, threads, rings, servers };
}
type World = Awaited<ReturnType<typeof openWorld>>;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const cpuSeconds = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** Trains `n` steps of epoch `epoch` on every rank of the world; rank 0's reports, wall and CPU. */
async function train(world: World, epoch: number, n: number) {
  const reports: StepReport[] = [];
  let calls = 0;
  const c0 = cpuSeconds();
  const t0 = performance.now();
  await Promise.all(
    world.threads.map((thread, rank) =>
      thread.trainEpoch(
        { epoch, steps: n, fromStep: 0 },
        {
          async reduce(wire, tag) {
            if (carriesStopVote(wire, tag)) wire[wire.length - 1] = 0;
            if (rank === 0) calls++;
            await world.rings[rank].allreduce(wire, tag);
          },
          step: (r) => {
            if (rank === 0) reports.push(r);
          },
        },
      ),
    ),
  );
  return {
    compute: 1000 * median(reports.map((r) => r.computeSeconds)),
    exposed: 1000 * median(reports.map((r) => r.reduceSeconds)),
    wall: (performance.now() - t0) / 1000 / n,
    cpu: (cpuSeconds() - c0) / n,
    pieces: calls / n,
  };
}

const worlds = { plain: await openWorld('plain'), overlap: await openWorld('overlap') };
console.log(
  `BBN-ResNet-32 at 32x32x3, C=10, global batch ${batch} (${batch / W}+${batch / W} per rank), W=2 compute threads in one process (tfjs-node, 1 thread each), tcp ring on the ${worlds.plain.rings[0].dataPlane} data plane; overlap segments >= ${segmentBytes / 1024} KiB; ${steps} steps per round, ${rounds} rounds, modes taking turns`,
);
// Warm-up: epoch 1, one step in each world (kernel set-up), not reported.
for (const mode of MODES) await train(worlds[mode], 1, 1);
console.log(
  '| round | mode | compute ms | exposed allreduce ms | step ms (compute + exposed) | wall s/step (process) | CPU s/step (process) | pieces per step |',
);
console.log('|---|---|---|---|---|---|---|---|');
const rows: Array<Awaited<ReturnType<typeof train>> & { round: number; mode: Mode }> = [];
const same: boolean[] = [];
for (let r = 1; r <= rounds; r++) {
  for (const mode of r % 2 ? MODES : ([...MODES].reverse() as Mode[])) {
    const res = { ...(await train(worlds[mode], r + 1, steps)), round: r, mode };
    rows.push(res);
    console.log(
      `| ${r} | ${mode} | ${res.compute.toFixed(0)} | ${res.exposed.toFixed(1)} | ${(res.compute + res.exposed).toFixed(0)} | ${res.wall.toFixed(2)} | ${res.cpu.toFixed(2)} | ${res.pieces} |`,
    );
  }
  same.push((await worlds.plain.threads[0].digest()) === (await worlds.overlap.threads[0].digest()));
}
console.log('\nPer round (ratios within a round):\n');
console.log(
  '| round | hidden fraction of the allreduce | compute ms overlap - plain | net step ms saved (plain - overlap) | CPU s/step overlap / plain |',
);
console.log('|---|---|---|---|---|');
for (let r = 1; r <= rounds; r++) {
  const p = rows.find((x) => x.round === r && x.mode === 'plain')!;
  const o = rows.find((x) => x.round === r && x.mode === 'overlap')!;
  console.log(
    `| ${r} | ${(1 - o.exposed / p.exposed).toFixed(2)} | ${(o.compute - p.compute).toFixed(0)} | ${(p.compute + p.exposed - o.compute - o.exposed).toFixed(0)} | ${(o.cpu / p.cpu).toFixed(2)} |`,
  );
}
console.log(
  `\nweights of the two worlds after each round: ${same.every(Boolean) ? 'identical (SHA-256) after every round' : `DIFFER after rounds ${same.flatMap((s, i) => (s ? [] : [i + 1])).join(', ')}`}`,
);
console.log(
  `ring time per allreduce call (rank 0, whole run): plain ${((1000 * worlds.plain.rings[0].stats().seconds) / worlds.plain.rings[0].stats().allreduces).toFixed(1)} ms, overlap ${((1000 * worlds.overlap.rings[0].stats().seconds) / worlds.overlap.rings[0].stats().allreduces).toFixed(1)} ms`,
);
for (const w of Object.values(worlds)) {
  await Promise.all(w.threads.map((t) => t.close()));
  await Promise.all(w.rings.map((r) => r.close()));
  await Promise.all(w.servers.map((s) => s.close()));
}
for (const d of dirs) rmSync(d, { recursive: true, force: true });
if (!same.every(Boolean)) process.exitCode = 1;
