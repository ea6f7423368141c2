/**
 * Ring set-up: serve the downstream neighbour's call and call the upstream neighbour, each side
 * checking the other's settings (hello/accept), retrying with backoff while peers start, within
 * one deadline. On timeout the error lists the neighbours that never connected and the last
 * error seen (FAILURE-LESSONS.md 7).
 */
import * as grpc from '@grpc/grpc-js';
import type { bbn } from '../generated/bbn.js';
import { CollectiveConfigError, describeRank, type ListenAddress, RingTimeoutError } from './api.ts';
import { DownstreamEdge, type PeerRef, UpstreamEdge, upstreamChannelOptions } from './edges.ts';
import { dtypeValue } from './frame-codec.ts';
import { FRAME_HEADER_ALLOWANCE, parseHostPort, type RingConfig } from './options.ts';
import { CollectiveServer, EdgeRejection, type RawServerCall } from './peer-server.ts';

/** Both edges of a connected ring member, and what `close()` must release. */
export interface RingEdges {
  readonly upstream: UpstreamEdge;
  readonly downstream: DownstreamEdge;
  /** Removes the ring from its peer server (later hellos for it are refused). */
  readonly unregister: () => void;
  /** The server the ring started itself, to be closed with it; null for a shared server. */
  readonly ownedServer: CollectiveServer | null;
}

function accept(cfg: RingConfig): bbn.v1.RingAccept.$Properties {
  return {
    runId: cfg.runId,
    generation: cfg.generation,
    worldSize: cfg.worldSize,
    rank: cfg.rank,
    chunkElements: cfg.chunkElements,
    wireDtype: dtypeValue(cfg.dtype),
    address: cfg.peers[cfg.rank],
  };
}

/** Checks the downstream neighbour's hello (the server already matched run, generation, callee). */
function checkHello(cfg: RingConfig, hello: bbn.v1.RingHello): void {
  const expected = (cfg.rank + 1) % cfg.worldSize;
  if (hello.rank !== expected) {
    throw new EdgeRejection(
      grpc.status.INVALID_ARGUMENT,
      `rank ${cfg.rank}: hello from rank ${hello.rank}, but the downstream neighbour is rank ${expected}`,
    );
  }
  const checks: Array<[string, unknown, unknown]> = [
    ['world_size', hello.worldSize, cfg.worldSize],
    ['chunk_elements', hello.chunkElements, cfg.chunkElements],
    ['wire_dtype', hello.wireDtype, dtypeValue(cfg.dtype)],
  ];
  for (const [field, got, want] of checks) {
    if (got !== want) {
      throw new EdgeRejection(
        grpc.status.FAILED_PRECONDITION,
        `rank ${cfg.rank}: hello from rank ${hello.rank} has ${field} ${JSON.stringify(got)}, this ring has ${JSON.stringify(want)}`,
      );
    }
  }
}

/** Checks the upstream neighbour's accept. */
function checkAccept(cfg: RingConfig, got: bbn.v1.RingAccept, up: PeerRef): void {
  const want = accept(cfg);
  const checks: Array<[string, unknown, unknown]> = [
    ['run_id', got.runId, want.runId],
    ['generation', got.generation, want.generation],
    ['world_size', got.worldSize, want.worldSize],
    ['rank', got.rank, up.rank],
    ['chunk_elements', got.chunkElements, want.chunkElements],
    ['wire_dtype', got.wireDtype, want.wireDtype],
  ];
  for (const [field, value, expected] of checks) {
    if (value !== expected) {
      throw new CollectiveConfigError(
        `rank ${cfg.rank}: ${describeRank(up.rank, up.address)} accepted with ${field} ${JSON.stringify(value)}, this ring has ${JSON.stringify(expected)}`,
      );
    }
  }
}

/** Connects both edges of rank `cfg.rank`, or fails having released everything it took. */
export async function connectRing(
  cfg: RingConfig,
  where: { server?: CollectiveServer; listen?: ListenAddress },
): Promise<RingEdges> {
  const ownedServer = where.server
    ? null
    : await CollectiveServer.listen(where.listen ?? parseHostPort(cfg.peers[cfg.rank]), {
        keepaliveMs: cfg.keepaliveMs,
        token: cfg.token,
      });
  const server = where.server ?? ownedServer!;
  const self: PeerRef = { rank: cfg.rank, address: cfg.peers[cfg.rank] };
  const upRank = (cfg.rank + cfg.worldSize - 1) % cfg.worldSize;
  const up: PeerRef = { rank: upRank, address: cfg.peers[upRank] };
  const downRank = (cfg.rank + 1) % cfg.worldSize;

  let upstream: UpstreamEdge | null = null;
  let downstream: DownstreamEdge | null = null;
  let onDownstream: (() => void) | null = null;
  let unregister: () => void = () => {};
  const setup = new AbortController();
  let lastUpstreamError = 'no answer yet';
  let timer: NodeJS.Timeout | undefined;
  try {
    unregister = server.register(cfg.runId, cfg.generation, cfg.rank, {
      acceptDownstream: (call: RawServerCall, hello: bbn.v1.RingHello) => {
        if (downstream || setup.signal.aborted) {
          throw new EdgeRejection(
            grpc.status.ALREADY_EXISTS,
            `rank ${cfg.rank}: downstream edge already connected`,
          );
        }
        checkHello(cfg, hello);
        const peer = { rank: hello.rank, address: hello.address || cfg.peers[hello.rank] };
        downstream = new DownstreamEdge(call, peer, accept(cfg));
        onDownstream?.();
      },
    });
    const upstreamP = UpstreamEdge.connect({
      self,
      peer: up,
      hello: { ...accept(cfg), upstreamRank: up.rank },
      token: cfg.token,
      channelOptions: upstreamChannelOptions(cfg.chunkElements * 4 + FRAME_HEADER_ALLOWANCE, cfg.keepaliveMs),
      validate: (got) => checkAccept(cfg, got, up),
      signal: setup.signal,
      onRetry: (text) => {
        lastUpstreamError = text;
      },
    }).then((edge) => {
      upstream = edge;
    });
    const downstreamP = new Promise<void>((resolve) => {
      onDownstream = resolve;
      if (downstream) resolve();
    });
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const missing: string[] = [];
        const ranks: number[] = [];
        if (!upstream) {
          ranks.push(up.rank);
          missing.push(
            `${describeRank(up.rank, up.address)} never accepted our call (last error: ${lastUpstreamError})`,
          );
        }
        if (!downstream) {
          ranks.push(downRank);
          missing.push(`${describeRank(downRank, cfg.peers[downRank])} never called us`);
        }
        const text = `rank ${cfg.rank}: ring set-up timed out after ${cfg.connectTimeoutMs} ms: ${missing.join('; ')}`;
        reject(new RingTimeoutError(text, ranks));
      }, cfg.connectTimeoutMs);
    });
    try {
      await Promise.race([Promise.all([upstreamP, downstreamP]), timeout]);
    } catch (err) {
      setup.abort(err);
      await upstreamP.catch(() => {});
      throw err;
    }
    return { upstream: upstream!, downstream: downstream!, unregister, ownedServer };
  } catch (err) {
    unregister();
    (upstream as UpstreamEdge | null)?.destroy();
    (downstream as DownstreamEdge | null)?.destroy();
    await ownedServer?.close();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
