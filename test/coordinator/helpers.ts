/** Test helpers: a coordinator on loopback with a real generated client, and promisified calls. */
import * as grpc from '@grpc/grpc-js';
import type { CoordinatorServerOptions } from '../../src/coordinator/server.ts';
import { CoordinatorServer } from '../../src/coordinator/server.ts';
import { parseRunConfig, type RunConfig } from '../../src/core/index.ts';
import type { bbn } from '../../src/generated/bbn.js';
import { CoordinatorServiceClient } from '../../src/generated/bbn-grpc.ts';

/** A small BBN run: 4 long-tailed classes (40/20/10/6 images), global batch 16, 6 epochs. */
export function tinyRun(workers: number, extra: Record<string, unknown> = {}) {
  const cfg: RunConfig = parseRunConfig({
    name: 'tiny',
    seed: 7,
    method: 'bbn',
    dataset: { kind: 'synthetic', numClasses: 4, perClass: 40, imageSize: 8, channels: 1 },
    train: { epochs: 6, batchSize: 16, lrSchedule: { name: 'multistep', milestones: [4], warmupEpochs: 2 } },
    distributed: { workers },
    ...extra,
  });
  const counts = [40, 20, 10, 6];
  const labels = new Int32Array(counts.flatMap((n, c) => new Array<number>(n).fill(c)));
  return { runId: 'run-1', cfg, labels, numClasses: 4 };
}

/** A settable clock. */
export class FakeClock {
  t = 1_000;
  now(): number {
    return this.t;
  }
}

/** A started coordinator and a client of it; `close` shuts both. */
export async function startCoordinator(
  workers: number,
  options: Partial<CoordinatorServerOptions> = {},
  run = tinyRun(workers),
) {
  const server = new CoordinatorServer(run, { clock: new FakeClock(), tickIntervalMs: 0, ...options });
  const address = await server.start({ host: '127.0.0.1', port: 0 });
  const client = new CoordinatorServiceClient(address, grpc.credentials.createInsecure());
  return {
    server,
    address,
    client,
    async close() {
      client.close();
      await server.close();
    },
  };
}

/** Calls a unary method and resolves with its response or rejects with the ServiceError. */
export function unary<Req, Res>(
  method: (req: Req, cb: (err: grpc.ServiceError | null, res?: Res) => void) => unknown,
  req: Req,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(req, (err, res) => (err ? reject(err) : resolve(res as Res)));
  });
}

/** Resolves with the error a promise rejects with (fails if it resolves). */
export async function failure(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error('expected the call to fail');
}

/** Reads a server stream to its end. */
export function readAll<T>(stream: grpc.ClientReadableStream<T>): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const out: T[] = [];
    stream.on('data', (m: T) => out.push(m));
    stream.on('error', reject);
    stream.on('end', () => resolve(out));
  });
}

/** A Join request of worker `id`. */
export function joinReq(id: string, extra: Partial<bbn.v1.IJoinRequest> = {}): bbn.v1.IJoinRequest {
  return {
    runId: 'run-1',
    workerId: id,
    address: `127.0.0.1:${9000 + id.charCodeAt(id.length - 1)}`,
    host: `host-${id}`,
    modelSignature: 'resnet8#abc',
    configDigest: 'cfg-1',
    ...extra,
  };
}
