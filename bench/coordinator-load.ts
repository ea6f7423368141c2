/**
 * The coordinator under load: N simulated ranks (default 256), each on its own gRPC connection,
 * heartbeat once a second to one `CoordinatorServer` on loopback for D seconds. Reported: heartbeat
 * round-trip p50/p99/max, errors, the server process's memory and CPU, the rendezvous of all N
 * ranks, and the time from one rank's last heartbeat to the coordinator's verdict on it, under that
 * load (the bound is 4.5 s: the 4 s timeout plus one 0.5 s judging tick).
 *
 * The simulated ranks run in this process too (one event loop for both sides), so latencies are an
 * upper bound on what a dedicated coordinator process would show.
 *
 * usage: node --import tsx bench/coordinator-load.ts [--ranks 256] [--seconds 20]
 */
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import type { RankVerdict } from '../src/coordinator/api.ts';
import { CoordinatorServer } from '../src/coordinator/server.ts';
import { CoordinatorServiceClient } from '../src/generated/bbn-grpc.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const N = arg('ranks', 256);
const SECONDS = arg('seconds', 20);
const RUN = 'load';
const lost: { verdict: RankVerdict; at: number }[] = [];
const server = new CoordinatorServer({
  runId: RUN,
  onLost: (verdict) => lost.push({ verdict, at: performance.now() }),
});
const address = await server.start({ host: '127.0.0.1', port: 0 });
const memBefore = process.memoryUsage();
const cpuBefore = process.cpuUsage();

const latencies: number[] = [];
let errors = 0;
const silenced = new Set<number>();
const lastSent = new Map<number, number>();
const clients = Array.from(
  { length: N },
  () =>
    new CoordinatorServiceClient(address, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1, // one connection per simulated rank, as separate processes have
    }),
);
const beat = (rank: number) => {
  if (silenced.has(rank)) return;
  const sent = performance.now();
  lastSent.set(rank, sent);
  clients[rank].heartbeat(
    {
      runId: RUN,
      rank,
      state: 4,
      epoch: 1,
      step: 0,
      ringAddress: `10.0.${rank >> 8}.${rank & 255}:7071`,
      progressAgeMs: 0,
    },
    { deadline: Date.now() + 1_000 },
    (err) => {
      if (err) errors++;
      else latencies.push(performance.now() - sent);
    },
  );
};
// Each rank beats once a second, the ranks spread over the second.
const timers: NodeJS.Timeout[] = [];
for (let rank = 0; rank < N; rank++) {
  setTimeout(
    () => {
      beat(rank);
      timers.push(setInterval(() => beat(rank), 1_000));
    },
    (1_000 * rank) / N,
  );
}

const formedAt = performance.now();
const peers = await server.formGeneration(N, 0, 60_000);
const formMs = performance.now() - formedAt;
await new Promise((r) => setTimeout(r, SECONDS * 1_000));

// One rank stops: the verdict must come within 4.5 s of its last heartbeat, under the load.
const victim = Math.floor(N / 2);
silenced.add(victim);
const victimLast = lastSent.get(victim) ?? performance.now();
const deadline = performance.now() + 15_000;
while (!lost.some((l) => l.verdict.rank === victim) && performance.now() < deadline) {
  await new Promise((r) => setTimeout(r, 20));
}
const verdict = lost.find((l) => l.verdict.rank === victim);
const cpu = process.cpuUsage(cpuBefore);
const mem = process.memoryUsage();
for (const t of timers) clearInterval(t);
for (const c of clients) c.close();
await server.close();

const sorted = [...latencies].sort((a, b) => a - b);
const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MB`;
const wall = SECONDS + formMs / 1000;
console.log(`coordinator load: ${N} ranks, 1 heartbeat/s each, ${SECONDS} s after the rendezvous`);
console.log(`  rendezvous of ${peers.length} ranks: ${formMs.toFixed(0)} ms`);
console.log(
  `  heartbeats: ${latencies.length} answered, ${errors} errors; round trip p50 ${q(0.5).toFixed(2)} ms, p99 ${q(0.99).toFixed(2)} ms, max ${sorted.at(-1)?.toFixed(2)} ms`,
);
console.log(
  `  this process (server + ${N} simulated ranks): CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s over ${wall.toFixed(1)} s; RSS ${mb(mem.rss)} (was ${mb(memBefore.rss)}), heap ${mb(mem.heapUsed)}`,
);
console.log(
  verdict
    ? `  rank ${victim} silenced: verdict ${((verdict.at - victimLast) / 1000).toFixed(2)} s after its last heartbeat (bound 4.5 s); other verdicts: ${lost.length - 1}`
    : `  rank ${victim} silenced: NO verdict within 15 s`,
);
process.exitCode = verdict && errors === 0 && lost.length === 1 ? 0 : 1;
