/**
 * Peer benchmark of the ring allreduce (issue 16): our ring (gRPC data; transport tcp with its
 * chunks moved by JavaScript or by the native data plane) beside torch.distributed gloo,
 * the same ring over plain TCP (bench/allreduce-tcp.ts) and one raw TCP stream, W ranks as
 * separate processes on loopback, interleaved round by round so every kind sees the same load.
 * Not part of CI (it needs PyTorch and minutes of both cores).
 *
 *   npm run bench:peers -- [--worlds 2,4] [--sizes-mb 2,100,245] [--rounds 3] [--iters 10,3]
 *     [--kinds grpc,ringtcp,tcp,gloo,stream] [--chunk-kib 1024] [--compress none|bf16]
 *     (kind ringtcp: the tcp ring with dataPlane 'js', its chunks moved by the event loop;
 *     ringtcpjs: the same reducing with the JavaScript loop instead of the SIMD kernel;
 *     native: the same tcp ring with dataPlane 'native', the shipped native data plane of
 *     native/ring-plane, which scripts/setup-native.sh builds)
 *     [--python python3]
 *
 * Per (W, size) and kind it prints wall ms per allreduce (slowest rank, median of a round),
 * algbw = bytes / time, busbw = algbw * 2(W-1)/W (nccl-tests' definition), and CPU ms per rank per
 * allreduce (user + system, every thread: process.cpuUsage in Node, getrusage in Python), as the
 * range over rounds; then the ratios, each computed within a round. The stream is one TCP
 * connection from rank 0 to rank 1 (rank 1 copies the bytes into its array); its "busbw" is its
 * bandwidth, the most one ring edge can carry. MB = 10^6 bytes. `--iters a,b`: allreduces per
 * round below / from 50 MB. In the ratios, ring(tcp) is kind ringtcp (dataPlane 'js') and native
 * is kind native. `--python` (or BENCH_PYTHON) must import torch. BENCH_NODE_ARGS adds
 * node flags to the Node ranks (a CPU profile: "--cpu-prof --cpu-prof-dir=DIR").
 */
import { type ChildProcess, fork, spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ringPlaneAddon } from '../../src/collective/native-plane.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const USAGE = `npm run bench:peers -- [--worlds 2,4] [--sizes-mb 2,100,245] [--rounds 3] [--iters 10,3]
  [--kinds grpc,ringtcp,tcp,gloo,stream] [--chunk-kib 1024] [--compress none|bf16] [--python python3]
kinds: grpc, ringtcp (tcp ring, dataPlane 'js'), ringtcpjs (the same, JavaScript add), native (tcp ring,
  dataPlane 'native'; build it with scripts/setup-native.sh), tcp (bench TCP ring), gloo, stream`;
/** The flags; an unknown or malformed one is one line and exit 2. */
function parseOptions() {
  try {
    return parseArgs({
      options: {
        worlds: { type: 'string', default: '2,4' },
        'sizes-mb': { type: 'string', default: '2,100,245' },
        rounds: { type: 'string', default: '3' },
        iters: { type: 'string', default: '10,3' },
        kinds: { type: 'string', default: 'grpc,ringtcp,tcp,gloo,stream' },
        'chunk-kib': { type: 'string', default: '1024' },
        compress: { type: 'string', default: 'none' },
        python: { type: 'string', default: process.env.BENCH_PYTHON ?? 'python3' },
        help: { type: 'boolean', default: false },
      },
    });
  } catch (err) {
    console.error(`bench:peers: ${(err as Error).message.split('\n')[0]} (--help lists the flags)`);
    process.exit(2);
  }
}
const { values } = parseOptions();
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

type Kind = 'grpc' | 'ringtcp' | 'ringtcpjs' | 'tcp' | 'gloo' | 'stream' | 'native';
const KIND_LABEL: Record<Kind, string> = {
  grpc: 'our ring, gRPC data (transport grpc)',
  ringtcp: "our ring, transport tcp, dataPlane 'js'",
  ringtcpjs: 'the same, reduce by the JavaScript loop (no SIMD)',
  tcp: 'bench TCP ring (no checks)',
  gloo: 'torch gloo',
  stream: 'one TCP stream',
  native: "our ring, transport tcp, dataPlane 'native'",
};
const worlds = values.worlds.split(',').map(Number);
const sizesMb = values['sizes-mb'].split(',').map(Number);
const rounds = Number(values.rounds);
const [itersSmall, itersLarge] = values.iters.split(',').map(Number);
const kinds = values.kinds.split(',') as Kind[];
const chunkBytes = Number(values['chunk-kib']) * 1024;
for (const k of kinds) {
  if (!(k in KIND_LABEL)) {
    console.error(
      `--kinds: unknown kind ${JSON.stringify(k)} (grpc, ringtcp, ringtcpjs, tcp, gloo, stream, native)`,
    );
    process.exit(2);
  }
}
if (kinds.includes('gloo')) {
  const probe = spawnSync(values.python, [
    '-c',
    'import torch.distributed as d; assert d.is_gloo_available()',
  ]);
  if (probe.status !== 0) {
    console.error(
      `--python ${values.python}: cannot import torch with gloo (install torch in a venv and pass --python, or drop gloo from --kinds)`,
    );
    process.exit(2);
  }
}

if (kinds.includes('native') && values.compress !== 'none') {
  console.error('--kinds native: the native data plane sends float32 only (drop --compress or native)');
  process.exit(2);
}
if (kinds.includes('native')) {
  const addon = ringPlaneAddon();
  if (typeof addon === 'string') {
    console.error(`--kinds native: ${addon}`);
    process.exit(2);
  }
}

/** Per-iteration results of one rank. */
interface RankResult {
  times: number[];
  cpu: number[];
  ok: boolean;
}

/** A set of W ranks of one implementation that can run `iters` allreduces of n elements. */
interface Ranks {
  run(kind: Kind, n: number, iters: number): Promise<RankResult[]>;
  close(): Promise<void>;
}

function nextMessage(child: ChildProcess, type: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: { type: string; message?: string }): void => {
      if (m.type === 'error') reject(new Error(`node rank: ${m.message}`));
      else if (m.type === type) {
        child.off('message', onMsg);
        child.off('exit', onExit);
        resolve(m);
      }
    };
    const onExit = (code: number | null): void =>
      reject(new Error(`node rank exited (${code}) before ${type}`));
    child.on('message', onMsg);
    child.once('exit', onExit);
  });
}

/** W Node ranks (bench/allreduce-worker.ts): the gRPC ring, the TCP rings and the stream. */
async function nodeRanks(W: number): Promise<Ranks> {
  const children = Array.from({ length: W }, (_, r) =>
    fork(path.join(here, '..', 'allreduce-worker.ts'), [String(r), String(W)], {
      // BENCH_NODE_ARGS: extra node flags for the ranks, e.g. "--cpu-prof --cpu-prof-dir=DIR".
      execArgv: ['--import', 'tsx', ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [])],
      serialization: 'advanced',
    }),
  );
  const listening = await Promise.all(children.map((c) => nextMessage(c, 'listening')));
  const ready = children.map((c) => nextMessage(c, 'ready'));
  for (const c of children) {
    c.send({
      type: 'peers',
      grpc: listening.map((l) => l.grpc),
      tcp: listening.map((l) => l.tcp),
      stream: listening.map((l) => l.stream),
      native: kinds.includes('native'),
      chunkBytes,
      compress: values.compress,
    });
  }
  await Promise.all(ready);
  return {
    async run(kind, n, iters) {
      const active = kind === 'stream' ? children.slice(0, 2) : children;
      const results = active.map((c) => nextMessage(c, 'result'));
      for (const c of active) c.send({ type: 'run', kind, n, iters });
      return (await Promise.all(results)) as unknown as RankResult[];
    },
    async close() {
      const exited = children.map((c) => new Promise((r) => c.once('exit', r)));
      for (const c of children) c.send({ type: 'exit' });
      await Promise.all(exited);
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** W torch.distributed gloo ranks (bench/peers/allreduce_gloo.py). */
async function glooRanks(W: number): Promise<Ranks> {
  const port = await freePort();
  const procs = Array.from({ length: W }, (_, r) =>
    spawn(values.python, [path.join(here, 'allreduce_gloo.py'), String(r), String(W), String(port)], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, GLOO_SOCKET_IFNAME: 'lo', OMP_NUM_THREADS: '1' },
    }),
  );
  const lines = procs.map((p) => readline.createInterface({ input: p.stdout! })[Symbol.asyncIterator]());
  const expect = async (r: number, prefix: string): Promise<string> => {
    for (;;) {
      const { value, done } = await lines[r].next();
      if (done) throw new Error(`gloo rank ${r} exited before ${prefix}`);
      if (value.startsWith(prefix)) return value.slice(prefix.length);
    }
  };
  await Promise.all(procs.map((_, r) => expect(r, 'READY')));
  return {
    async run(_kind, n, iters) {
      for (const p of procs) p.stdin!.write(`${JSON.stringify({ n, iters })}\n`);
      return Promise.all(procs.map(async (_, r) => JSON.parse(await expect(r, 'RESULT ')) as RankResult));
    },
    async close() {
      const exited = procs.map((p) => new Promise((r) => p.once('exit', r)));
      for (const p of procs) p.stdin!.end(`${JSON.stringify({ exit: true })}\n`);
      await Promise.all(exited);
    },
  };
}

/** Bound on one kind's allreduces of one round: a hang is reported, not waited out. */
const RUN_LIMIT_S = 900;

function withinSeconds<T>(p: Promise<T>, seconds: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${seconds} s`)), seconds * 1000);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** One round's figures for one kind. */
interface Round {
  seconds: number;
  cpu: number;
}

function range(xs: number[], digits: number): string {
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return lo.toFixed(digits) === hi.toFixed(digits)
    ? lo.toFixed(digits)
    : `${lo.toFixed(digits)}-${hi.toFixed(digits)}`;
}

async function benchWorld(W: number): Promise<void> {
  const node = await nodeRanks(W);
  const gloo = kinds.includes('gloo') ? await glooRanks(W) : null;
  try {
    for (const mb of sizesMb) {
      const n = Math.round((mb * 1e6) / 4);
      const bytes = n * 4;
      const iters = mb >= 50 ? itersLarge : itersSmall;
      const byKind = new Map<Kind, Round[]>(kinds.map((k) => [k, []]));
      for (let round = 0; round < rounds; round++) {
        // Rotate the order each round so no kind always follows the same one.
        const order = kinds.map((_, i) => kinds[(i + round) % kinds.length]);
        for (const kind of order) {
          const rs = await withinSeconds(
            (kind === 'gloo' ? gloo! : node).run(kind, n, iters),
            RUN_LIMIT_S,
            `${KIND_LABEL[kind]} W=${W} ${mb} MB round ${round}`,
          );
          if (!rs.every((r) => r.ok)) throw new Error(`${kind} W=${W} ${mb} MB: wrong sum`);
          const timed = rs.filter((r) => r.times.length > 0);
          const perIter = timed[0].times.map((_, i) => Math.max(...timed.map((r) => r.times[i])));
          const cpuPerIter = rs[0].cpu.map((_, i) => rs.reduce((acc, r) => acc + r.cpu[i], 0) / rs.length);
          byKind.get(kind)!.push({ seconds: median(perIter), cpu: median(cpuPerIter) });
        }
      }
      const factor = (2 * (W - 1)) / W;
      const busbw = (kind: Kind, r: Round): number =>
        (bytes / r.seconds / 1e9) * (kind === 'stream' ? 1 : factor);
      const wire = values.compress === 'bf16' ? ', bf16 wire for our rings' : '';
      console.log(
        `\n### W=${W}, ${mb} MB (${rounds} rounds x ${iters} allreduces, ranges over rounds${wire})\n`,
      );
      console.log('| kind | wall ms | algbw GB/s | busbw GB/s | CPU ms per rank |');
      console.log('|---|---|---|---|---|');
      for (const kind of kinds) {
        const rs = byKind.get(kind)!;
        const cells = [
          KIND_LABEL[kind],
          range(
            rs.map((r) => r.seconds * 1000),
            1,
          ),
          kind === 'stream'
            ? ''
            : range(
                rs.map((r) => bytes / r.seconds / 1e9),
                3,
              ),
          range(
            rs.map((r) => busbw(kind, r)),
            3,
          ),
          range(
            rs.map((r) => r.cpu * 1000),
            1,
          ),
        ];
        console.log(`| ${cells.join(' | ')} |`);
      }
      const ratio = (a: Kind, b: Kind, what: 'bw' | 'cpu'): string | null => {
        if (!byKind.has(a) || !byKind.has(b)) return null;
        const ra = byKind.get(a)!;
        const rb = byKind.get(b)!;
        const xs = ra.map((r, i) => (what === 'bw' ? busbw(a, r) / busbw(b, rb[i]) : r.cpu / rb[i].cpu));
        return `${range(xs, 2)}x`;
      };
      const lines = [
        ['busbw ring(grpc) / gloo', ratio('grpc', 'gloo', 'bw')],
        ['CPU ring(grpc) / gloo', ratio('grpc', 'gloo', 'cpu')],
        ['busbw ring(grpc) / one TCP stream', ratio('grpc', 'stream', 'bw')],
        ['busbw ring(tcp) / gloo', ratio('ringtcp', 'gloo', 'bw')],
        ['CPU ring(tcp) / gloo', ratio('ringtcp', 'gloo', 'cpu')],
        ['busbw ring(tcp) / one TCP stream', ratio('ringtcp', 'stream', 'bw')],
        ['busbw ring(tcp) / ring(grpc)', ratio('ringtcp', 'grpc', 'bw')],
        ['CPU ring(tcp) / ring(grpc)', ratio('ringtcp', 'grpc', 'cpu')],
        ['CPU ring(tcp) / bench TCP ring', ratio('ringtcp', 'tcp', 'cpu')],
        ['CPU ring(tcp, SIMD add) / ring(tcp, JS add)', ratio('ringtcp', 'ringtcpjs', 'cpu')],
        ['CPU ring(tcp, JS add) / gloo', ratio('ringtcpjs', 'gloo', 'cpu')],
        ['busbw bench TCP ring / gloo', ratio('tcp', 'gloo', 'bw')],
        ['busbw native / gloo', ratio('native', 'gloo', 'bw')],
        ['CPU native / gloo', ratio('native', 'gloo', 'cpu')],
        ['busbw native / ring(tcp)', ratio('native', 'ringtcp', 'bw')],
        ['CPU native / ring(tcp)', ratio('native', 'ringtcp', 'cpu')],
        ['busbw native / one TCP stream', ratio('native', 'stream', 'bw')],
      ].filter((l): l is [string, string] => l[1] !== null);
      console.log(`\n${lines.map(([k, v]) => `${k}: ${v}`).join('; ')}`);
    }
  } finally {
    await node.close();
    await gloo?.close();
  }
}

const load = (): string =>
  os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');
console.log(
  `# allreduce peers: loopback, float32, chunk ${chunkBytes / 1024} KiB, worlds ${worlds.join(',')}, sizes ${sizesMb.join(',')} MB; ${os.cpus().length} cores, load average ${load()}`,
);
for (const W of worlds) await benchWorld(W);
console.log(`\n# load average at the end: ${load()}`);
