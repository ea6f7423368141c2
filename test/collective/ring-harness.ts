/**
 * In-process ring for tests: W RingAllreduce members in this process, each with its own peer
 * server bound on 127.0.0.1:0. A disposable: `close()` frees every ring and server.
 */
import {
  type AllreduceTag,
  CollectiveServer,
  RingAllreduce,
  type RingAllreduceOptions,
} from '../../src/collective/index.ts';
import type { FaultInjector, kFaultInjector } from '../../src/collective/internal.ts';

/** Options for every rank (per-rank overrides through `perRank`). */
export type LocalRingOptions = Partial<
  Omit<RingAllreduceOptions, 'rank' | 'worldSize' | 'peers' | 'server'>
> & {
  perRank?: (rank: number) => Partial<RingAllreduceOptions> & { [kFaultInjector]?: FaultInjector };
};

/** W ring members in one process. */
export interface LocalRing {
  readonly rings: RingAllreduce[];
  readonly servers: CollectiveServer[];
  readonly peers: string[];
  close(): Promise<void>;
}

/** Starts W peer servers on port 0 and creates the ring on all of them concurrently. */
export async function startLocalRing(worldSize: number, options: LocalRingOptions = {}): Promise<LocalRing> {
  const { perRank, ...common } = options;
  const servers = await Promise.all(
    Array.from({ length: worldSize }, () =>
      CollectiveServer.listen({ host: '127.0.0.1', port: 0 }, { keepaliveMs: common.keepaliveMs }),
    ),
  );
  const peers = servers.map((s) => s.address);
  const closeServers = (): Promise<unknown> => Promise.all(servers.map((s) => s.close()));
  const settled = await Promise.allSettled(
    servers.map((server, rank) =>
      RingAllreduce.create({
        runId: 'test-run',
        generation: 1,
        ...common,
        ...perRank?.(rank),
        rank,
        worldSize,
        peers,
        server,
      }),
    ),
  );
  const rings = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) {
    await Promise.all(rings.map((r) => r.close()));
    await closeServers();
    throw failed.reason;
  }
  return {
    rings,
    servers,
    peers,
    async close() {
      await Promise.all(rings.map((r) => r.close()));
      await closeServers();
    },
  };
}

/** Runs one allreduce on every rank; resolves with each rank's outcome (never rejects). */
export function allreduceAll(
  rings: readonly RingAllreduce[],
  data: readonly Float32Array[],
  tag: AllreduceTag,
): Promise<Array<{ ok: true } | { ok: false; error: Error }>> {
  return Promise.all(
    rings.map((r, i) =>
      r.allreduce(data[i], tag).then(
        () => ({ ok: true as const }),
        (error: Error) => ({ ok: false as const, error }),
      ),
    ),
  );
}
