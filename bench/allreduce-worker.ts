/**
 * One rank of bench/allreduce.ts (a forked child process). Talks to the parent over IPC:
 *   child → {type:'listening', grpc, tcp}     parent → {type:'peers', grpc[], tcp[], chunkBytes, compress}
 *   child → {type:'ready'}                    parent → {type:'run', kind, n, iters}
 *   child → {type:'result', times[], cpu[], ok}   parent → {type:'exit'}
 * `cpu` is this process's CPU seconds (user + system) per allreduce: less sensitive than wall
 * time to other load on the machine.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { CollectiveServer, RingAllreduce, type WireCompression } from '../src/collective/index.ts';
import { TcpRing } from './allreduce-tcp.ts';

type Msg =
  | { type: 'peers'; grpc: string[]; tcp: string[]; chunkBytes: number; compress: WireCompression }
  | { type: 'run'; kind: 'grpc' | 'tcp'; n: number; iters: number }
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
let ring: RingAllreduce | null = null;
let tcp: TcpRing | null = null;

process.on('message', async (m: Msg) => {
  try {
    if (m.type === 'peers') {
      [ring, tcp] = await Promise.all([
        RingAllreduce.create({
          runId: 'bench',
          generation: 1,
          rank,
          worldSize,
          peers: m.grpc,
          server,
          chunkBytes: m.chunkBytes,
          compress: m.compress,
        }),
        TcpRing.create(rank, worldSize, m.tcp, tcpServer, m.chunkBytes),
      ]);
      send({ type: 'ready' });
    } else if (m.type === 'run') {
      const data = new Float32Array(m.n);
      const times: number[] = [];
      const cpu: number[] = [];
      let ok = true;
      for (let i = 0; i <= m.iters; i++) {
        data.fill(1);
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        if (m.kind === 'grpc') await ring!.allreduce(data, { epoch: 0, step: i });
        else await tcp!.allreduce(data);
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
      tcp?.close();
      await server.close();
      tcpServer.close();
      process.exit(0);
    }
  } catch (err) {
    send({ type: 'error', message: String((err as Error)?.stack ?? err) });
    process.exit(1);
  }
});

send({ type: 'listening', grpc: server.address, tcp: `127.0.0.1:${tcpPort}` });
