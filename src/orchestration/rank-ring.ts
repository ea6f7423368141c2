/**
 * The ring side of one rank's Temporal worker process: one gRPC peer server for the process's
 * life (its address rides every heartbeat to the coordinator, whose rendezvous hands the
 * generation's addresses to every rank), and one ring per
 * membership (generation, W, peer addresses), rebuilt when the membership changes or after a
 * failure broke it.
 */
import type { RunToken } from '../auth/run-token.ts';
import { CollectiveServer, RingAllreduce } from '../collective/index.ts';
import type { RunConfig } from '../core/config.ts';
import type { TrainRequest } from './api.ts';

/** Where a rank's peer server binds and which host its peers dial. */
export interface RankRingOptions {
  /** Interface to bind; default 127.0.0.1. */
  readonly host?: string;
  /** Host the other ranks dial; default `host`. */
  readonly advertiseHost?: string;
  /** Port to bind; default 0 (any free port; a pod uses its declared container port). */
  readonly port?: number;
  /** Progress bound of one allreduce (ms); default 600 s (rank 0 evaluates while peers wait). */
  readonly timeoutMs?: number;
  /**
   * Ring keepalive (ms) of the peer server and so of every ring on it, both ends of each edge;
   * default the collective's (60 s). A Temporal rank computes on its main thread, which cannot
   * answer a ping during a step, so it must exceed the longest step. A dead rank is still noticed
   * at once (its sockets close) or by its activity's heartbeat timeout.
   */
  readonly keepaliveMs?: number;
  /** The run's token: checked on every edge of the peer server, sent on this rank's calls. */
  readonly token?: RunToken;
}

/** A request whose peer list does not name this process (it restarted after the rendezvous). */
export class StaleRendezvousError extends Error {
  override name = 'StaleRendezvousError';
}

/** The peer server and current ring of one rank process. */
export class RankRing {
  private server: Promise<CollectiveServer> | undefined;
  private current: { key: string; ring: RingAllreduce } | undefined;

  constructor(private readonly opts: RankRingOptions = {}) {}

  /** This process's ring address as peers must dial it (starts the peer server on first use). */
  async address(): Promise<string> {
    const server = await this.peerServer();
    if (!this.opts.advertiseHost) return server.address;
    const port = server.address.slice(server.address.lastIndexOf(':') + 1);
    return `${this.opts.advertiseHost}:${port}`;
  }

  /** The ring of `req`'s membership, connected to every peer (reused across the epochs of one membership). */
  async ringFor(req: TrainRequest, cfg: RunConfig): Promise<RingAllreduce> {
    const peers = req.peers ?? [];
    if (peers.length !== req.worldSize) {
      throw new TypeError(
        `trainEpoch rank ${req.rank}: ${peers.length} peer addresses for world size ${req.worldSize}`,
      );
    }
    const own = await this.address();
    if (peers[req.rank] !== own) {
      throw new StaleRendezvousError(
        `rank ${req.rank}: the rendezvous says this rank is at ${peers[req.rank]}, but this process listens on ${own} (it restarted); the epoch restarts with a new rendezvous`,
      );
    }
    const key = `${req.runId}/${req.generation}/${peers.join(',')}`;
    if (this.current?.key === key) return this.current.ring;
    await this.drop();
    const ring = await RingAllreduce.create({
      runId: req.runId,
      generation: req.generation,
      rank: req.rank,
      worldSize: req.worldSize,
      peers,
      server: await this.peerServer(),
      chunkBytes: cfg.distributed.chunkBytes,
      compress: cfg.distributed.compressBf16 ? 'bf16' : 'none',
      transport: cfg.distributed.transport,
      dataPlane: cfg.distributed.dataPlane,
      timeoutMs: this.opts.timeoutMs ?? 600_000,
      token: this.opts.token,
    });
    this.current = { key, ring };
    return ring;
  }

  /** Closes the current ring (after a failure, so the next attempt connects afresh). */
  async drop(): Promise<void> {
    const ring = this.current?.ring;
    this.current = undefined;
    await ring?.close().catch(() => {});
  }

  /** Closes the ring and the peer server. */
  async close(): Promise<void> {
    await this.drop();
    const server = this.server;
    this.server = undefined;
    await (await server?.catch(() => undefined))?.close().catch(() => {});
  }

  private peerServer(): Promise<CollectiveServer> {
    this.server ??= CollectiveServer.listen(
      { host: this.opts.host ?? '127.0.0.1', port: this.opts.port ?? 0 },
      { keepaliveMs: this.opts.keepaliveMs, token: this.opts.token },
    );
    return this.server;
  }
}
