/**
 * Ring allreduce bandwidth: RingAllreduce over gRPC vs the same ring over plain TCP (the ceiling),
 * W ranks as separate processes on loopback, same processes and bytes for both.
 *
 *   node --import tsx bench/allreduce.ts [--worlds 2,4] [--sizes-mb 2,100] [--chunk-kib 1024] [--bf16]
 *
 * Prints, per (W, size): median seconds per allreduce, algorithm bandwidth (size / time) and bus
 * bandwidth (algbw * 2(W-1)/W, the nccl-tests definition), for gRPC and TCP, and their ratio.
 * Time per iteration is the slowest rank's; cpu/rank is the mean CPU seconds (user + system) a rank
 * spends per allreduce, which other load on a shared machine distorts less. MB = 10^6 bytes.
 */
import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    worlds: { type: 'string', default: '2,4' },
    'sizes-mb': { type: 'string', default: '2,100' },
    'chunk-kib': { type: 'string', default: '1024' },
    bf16: { type: 'boolean', default: false },
  },
});
const worlds = values.worlds.split(',').map(Number);
const sizesMb = values['sizes-mb'].split(',').map(Number);
const chunkBytes = Number(values['chunk-kib']) * 1024;

interface Reply {
  type: string;
  grpc?: string;
  tcp?: string;
  times?: number[];
  cpu?: number[];
  ok?: boolean;
  message?: string;
}

function nextMessage(child: ChildProcess, type: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: Reply): void => {
      if (m.type === 'error') reject(new Error(`child error: ${m.message}`));
      else if (m.type === type) {
        child.off('message', onMsg);
        child.off('exit', onExit);
        resolve(m);
      }
    };
    child.on('message', onMsg);
    const onExit = (code: number | null): void =>
      reject(new Error(`child exited with ${code} waiting for ${type}`));
    child.once('exit', onExit);
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function benchWorld(W: number): Promise<void> {
  const children = Array.from({ length: W }, (_, r) =>
    fork(path.join(here, 'allreduce-worker.ts'), [String(r), String(W)], {
      execArgv: [
        '--import',
        'tsx',
        ...(process.env.BENCH_CHILD_ARGS ? process.env.BENCH_CHILD_ARGS.split(' ') : []),
      ],
      serialization: 'advanced',
    }),
  );
  try {
    const listening = await Promise.all(children.map((c) => nextMessage(c, 'listening')));
    const ready = children.map((c) => nextMessage(c, 'ready'));
    for (const c of children) {
      c.send({
        type: 'peers',
        grpc: listening.map((l) => l.grpc),
        tcp: listening.map((l) => l.tcp),
        chunkBytes,
        compress: values.bf16 ? 'bf16' : 'none',
      });
    }
    await Promise.all(ready);
    for (const mb of sizesMb) {
      const n = Math.round((mb * 1e6) / 4);
      const iters = mb >= 50 ? 5 : 20;
      const secs: Record<string, number> = {};
      const cpus: Record<string, number> = {};
      for (const kind of ['tcp', 'grpc', 'tcp', 'grpc'] as const) {
        const results = children.map((c) => nextMessage(c, 'result'));
        for (const c of children) c.send({ type: 'run', kind, n, iters });
        const rs = await Promise.all(results);
        if (!rs.every((r) => r.ok)) throw new Error(`${kind} W=${W} ${mb} MB: wrong sum`);
        const perIter = rs[0].times!.map((_, i) => Math.max(...rs.map((r) => r.times![i])));
        // Two alternating rounds per transport; keep each transport's better median.
        secs[kind] = Math.min(secs[kind] ?? Number.POSITIVE_INFINITY, median(perIter));
        const cpuPerIter = rs[0].cpu!.map((_, i) => rs.reduce((acc, r) => acc + r.cpu![i], 0) / W);
        cpus[kind] = Math.min(cpus[kind] ?? Number.POSITIVE_INFINITY, median(cpuPerIter));
      }
      const bytes = n * 4;
      const row = (kind: string): string => {
        const algbw = bytes / secs[kind] / 1e9;
        const busbw = (algbw * 2 * (W - 1)) / W;
        const cpuMs = (cpus[kind] * 1000).toFixed(1).padStart(8);
        return `${kind.padEnd(4)} ${(secs[kind] * 1000).toFixed(2).padStart(9)} ms  algbw ${algbw.toFixed(3)} GB/s  busbw ${busbw.toFixed(3)} GB/s  cpu/rank ${cpuMs} ms`;
      };
      console.log(`W=${W} size=${mb} MB chunk=${chunkBytes / 1024} KiB${values.bf16 ? ' bf16' : ''}`);
      console.log(`  ${row('grpc')}`);
      console.log(`  ${row('tcp')}`);
      console.log(
        `  grpc/tcp busbw ratio ${(secs.tcp / secs.grpc).toFixed(2)}  cpu ratio tcp/grpc ${(cpus.tcp / cpus.grpc).toFixed(2)}`,
      );
    }
    for (const c of children) c.send({ type: 'exit' });
    await Promise.all(children.map((c) => new Promise((r) => c.once('exit', r))));
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  }
}

for (const W of worlds) await benchWorld(W);
