/**
 * One rank of bench/allreduce.ts and bench/peers/allreduce-peers.ts (a forked child process).
 * Talks to the parent over IPC:
 *   child → {type:'listening', grpc, tcp, stream}  parent → {type:'peers', grpc[], tcp[], stream[], native?, chunkBytes, compress}
 *   child → {type:'ready'}                         parent → {type:'run', kind, n, iters}
 *   child → {type:'result', times[], cpu[], ok}    parent → {type:'exit'}
 * `cpu` is this process's CPU seconds (user + system) per allreduce: less sensitive than wall
 * time to other load on the machine.
 *
 * kind 'stream' is one raw TCP stream, the ceiling of one ring edge: rank 0 writes n float32s
 * (its array's own bytes, no copy) to rank 1, which copies them into its array and answers one
 * byte; times are rank 0's (first write to the answer), other ranks idle and report nothing.
 *
 * kind 'ringtcp' is our ring on transport 'tcp' with dataPlane 'js' (the event loop moves the
 * chunks); kind 'native' is the same ring with dataPlane 'native' (native/ring-plane: the chunks
 * move in C on a thread of its own, what a tcp ring runs by default where the addon is built). The
 * native ring is made only when the parent asks for it (`native: true` in 'peers'); the parent
 * checks beforehand that the addon is built (scripts/setup-native.sh).
 */

import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { CollectiveServer, RingAllreduce, type WireCompression } from '../src/collective/index.ts';
import { forceJsAdd } from '../src/collective/simd-add.ts';
import { TcpRing } from './allreduce-tcp.ts';

// BENCH_ADD=js: the ring reduces with the JavaScript loop instead of the SIMD kernel (a before/after).
forceJsAdd(process.env.BENCH_ADD === 'js');

type Msg =
  | {
      type: 'peers';
      grpc: string[];
      tcp: string[];
      stream?: string[];
      native?: boolean;
      chunkBytes: number;
      compress: WireCompression;
    }
  | {
      type: 'run';
      kind: 'grpc' | 'ringtcp' | 'ringtcpjs' | 'tcp' | 'stream' | 'native';
      n: number;
      iters: number;
    }
  | { type: 'exit' };

const rank = Number(process.argv[2]);
const worldSize = Number(process.argv[3]);
const send = (m: unknown): void => {
  process.send!(m);
};

const server = await CollectiveServer.listen({ host: '127.0.0.1', port: 0 });
const tcpServer = net.createServer();
await new Promise<void>((resolve) => tcpServer.listen(0, '127.0.0.1', resolve));
const tcpPort = (tcpServer.address() as net.AddressInfo).port;
const streamServer = net.createServer();
await new Promise<void>((resolve) => streamServer.listen(0, '127.0.0.1', resolve));
const streamPort = (streamServer.address() as net.AddressInfo).port;
let ring: RingAllreduce | null = null;
/** The same RingAllreduce with its chunk data on the raw-TCP data plane (transport 'tcp'), moved by JavaScript. */
let ringTcp: RingAllreduce | null = null;
/** The same tcp ring with its chunks moved by the native data plane (dataPlane 'native'). */
let ringNative: RingAllreduce | null = null;
let tcp: TcpRing | null = null;
/** Rank 0: the socket to rank 1; rank 1: the socket from rank 0 (kind 'stream'). */
let stream: net.Socket | null = null;

process.on('message', async (m: Msg) => {
  try {
    if (m.type === 'peers') {
      const streamReady = m.stream ? connectStream(m.stream) : Promise.resolve(null);
      const ringOf = (transport: 'grpc' | 'tcp', dataPlane: 'js' | 'native' = 'js') =>
        RingAllreduce.create({
          runId: `bench-${transport}-${dataPlane}`,
          generation: 1,
          rank,
          worldSize,
          peers: m.grpc,
          server,
          chunkBytes: m.chunkBytes,
          compress: m.compress,
          transport,
          dataPlane,
        });
      [ring, ringTcp, ringNative, tcp, stream] = await Promise.all([
        ringOf('grpc'),
        ringOf('tcp', 'js'),
        m.native ? ringOf('tcp', 'native') : null,
        TcpRing.create(rank, worldSize, m.tcp, tcpServer, m.chunkBytes),
        streamReady,
      ]);
      if (ringTcp.dataPlane !== 'js') throw new Error(`ring(tcp): data plane ${ringTcp.dataPlane}, not js`);
      if (ringNative && ringNative.dataPlane !== 'native') {
        throw new Error(`ring(native): data plane ${ringNative.dataPlane}, not native`);
      }
      send({ type: 'ready' });
    } else if (m.type === 'run' && m.kind === 'stream') {
      if (rank > 1) return;
      const data = new Float32Array(m.n).fill(rank === 0 ? 1 : 0);
      const { times, cpu } =
        rank === 0 ? await streamSend(data, m.iters) : await streamReceive(data, m.iters);
      send({ type: 'result', times, cpu, ok: rank === 0 || data[0] === 1 });
    } else if (m.type === 'run') {
      if (m.kind === 'native' && !ringNative) throw new Error("kind 'native': no native ring (peers.native)");
      const data = new Float32Array(m.n);
      const times: number[] = [];
      const cpu: number[] = [];
      let ok = true;
      for (let i = 0; i <= m.iters; i++) {
        data.fill(1);
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        // With compress 'bf16' the whole array counts as gradient (bf16 on the wire).
        const tag = { epoch: 0, step: i, bf16Elements: m.n };
        if (m.kind === 'grpc') await ring!.allreduce(data, tag);
        else if (m.kind === 'ringtcp') await ringTcp!.allreduce(data, tag);
        else if (m.kind === 'native') await ringNative!.allreduce(data, tag);
        else if (m.kind === 'ringtcpjs') {
          forceJsAdd(true);
          await ringTcp!.allreduce(data, tag).finally(() => forceJsAdd(process.env.BENCH_ADD === 'js'));
        } else await tcp!.allreduce(data);
        const dt = (performance.now() - t0) / 1000;
        const dc = process.cpuUsage(c0);
        // Iteration 0 warms up.
        if (i > 0) {
          times.push(dt);
          cpu.push((dc.user + dc.system) / 1e6);
        }
        if (data[0] !== worldSize || data[m.n - 1] !== worldSize) ok = false;
      }
      send({ type: 'result', times, cpu, ok });
    } else if (m.type === 'exit') {
      await ring?.close();
      await ringTcp?.close();
      await ringNative?.close();
      tcp?.close();
      stream?.destroy();
      await server.close();
      tcpServer.close();
      streamServer.close();
      process.exit(0);
    }
  } catch (err) {
    send({ type: 'error', message: String((err as Error)?.stack ?? err) });
    process.exit(1);
  }
});

/** Rank 0 dials rank 1's stream server; rank 1 takes that connection; others have none. */
async function connectStream(peers: string[]): Promise<net.Socket | null> {
  if (rank === 1) return new Promise((resolve) => streamServer.once('connection', resolve));
  if (rank !== 0) return null;
  const [host, port] = peers[1].split(':');
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port: Number(port), noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Rank 0: writes the array iters+1 times, each time waiting for rank 1's one-byte answer. */
async function streamSend(data: Float32Array, iters: number): Promise<{ times: number[]; cpu: number[] }> {
  const s = stream!;
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const times: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i <= iters; i++) {
    const answered = new Promise((resolve) => s.once('data', resolve));
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    s.write(bytes);
    await answered;
    const dc = process.cpuUsage(c0);
    if (i > 0) {
      times.push((performance.now() - t0) / 1000);
      cpu.push((dc.user + dc.system) / 1e6);
    }
  }
  return { times, cpu };
}

/** Rank 1: copies each incoming array into `data` and answers one byte when it is complete. */
function streamReceive(data: Float32Array, iters: number): Promise<{ times: number[]; cpu: number[] }> {
  const s = stream!;
  const dst = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const cpu: number[] = [];
  return new Promise((resolve) => {
    let at = 0;
    let round = 0;
    let c0 = process.cpuUsage();
    const onData = (b: Buffer): void => {
      dst.set(b, at);
      at += b.length;
      if (at < dst.length) return;
      at = 0;
      const dc = process.cpuUsage(c0);
      if (round > 0) cpu.push((dc.user + dc.system) / 1e6);
      s.write(ONE);
      c0 = process.cpuUsage();
      if (++round > iters) {
        // Paused, not just unlistened: a flowing socket with no 'data' listener drops what
        // arrives, and rank 0 may write the next round's array before this rank listens again.
        s.off('data', onData);
        s.pause();
        resolve({ times: [], cpu });
      }
    };
    s.on('data', onData);
    s.resume();
  });
}
const ONE = Buffer.from([1]);

send({
  type: 'listening',
  grpc: server.address,
  tcp: `127.0.0.1:${tcpPort}`,
  stream: `127.0.0.1:${streamPort}`,
});
