/**
 * The coordinator of one durable run, served by the process that hosts the run's workflow: it
 * takes every rank's heartbeat (gRPC `Heartbeat`, proto/bbn/v1/coordinator.proto), forms each
 * generation's ring from them (`formGeneration`: every rank's peer address, once all are alive)
 * and, once a second, reports a rank of the running generation that has been silent for the
 * heartbeat timeout (`onLost`). It validates every request, survives anything a client sends, and
 * clears every timer and call on `close()`.
 */
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { type RunToken, RunTokenVerifier } from '../auth/run-token.ts';
import type { bbn } from '../generated/bbn.js';
import { CoordinatorServiceDefinition, type CoordinatorServiceHandlers } from '../generated/bbn-grpc.ts';
import {
  type Clock,
  type CoordinatorTimings,
  type RankBeat,
  type RankPhase,
  type RankVerdict,
  RendezvousTimeoutError,
} from './api.ts';
import { RankBoard } from './board.ts';

/** Options of a CoordinatorServer. */
export interface CoordinatorServerOptions {
  /** The run whose ranks may report; others get NOT_FOUND. */
  readonly runId: string;
  /** Time source of every decision; default `performance.now`. */
  readonly clock?: Clock;
  readonly timings?: Partial<CoordinatorTimings>;
  /** Called once per silent rank of the watched generation (a rank lost). */
  readonly onLost?: (verdict: RankVerdict) => void;
  /** The run's token: a heartbeat without it is refused UNAUTHENTICATED, naming the caller. */
  readonly token?: RunToken;
  /** Period of the judging timer, ms; 0 disables it (tests call `judge()`). Default 500 ms. */
  readonly tickMs?: number;
  /**
   * A rendezvous still waits for `missing` after `waitedMs` (WAIT_NOTICE_MS, then every
   * WAIT_NOTICE_REPEAT_MS until it completes or times out): for a log line, so that ranks that
   * cannot reach this coordinator (a wrong address, a network policy) are named while it waits.
   */
  readonly onWaiting?: (notice: { generation: number; missing: readonly number[]; waitedMs: number }) => void;
}

/** When a rendezvous first names the ranks it still waits for; ranks that start answer within ~1 s. */
export const WAIT_NOTICE_MS = 10_000;
/** How often it names them again after that. */
export const WAIT_NOTICE_REPEAT_MS = 60_000;

/** Where to bind; port 0 picks a free one. */
export interface BindAddress {
  readonly host: string;
  readonly port: number;
}

/** Heartbeats are small control messages; anything bigger is refused by grpc-js. */
const MAX_REQUEST_BYTES = 16 * 1024;
/** The most ranks a run may have (the CLI's bound). */
const MAX_RANK = 4096;
const PHASES: Record<number, RankPhase> = {
  1: 'starting',
  3: 'idle',
  4: 'training',
  6: 'evaluating',
  8: 'stopping',
};

function formatHostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A heartbeat as a RankBeat, or the reason it is malformed (naming the field). */
export function beatOf(req: bbn.v1.HeartbeatRequest): RankBeat | string {
  if (!Number.isInteger(req.rank) || req.rank >= MAX_RANK)
    return `rank (${req.rank}) must be in 0..${MAX_RANK - 1}`;
  const phase = PHASES[req.state];
  if (!phase) return `state (${req.state}) is not a rank state`;
  if (!/^[^\s]+:\d{1,5}$/.test(req.ringAddress)) {
    return `ring_address (${JSON.stringify(req.ringAddress.slice(0, 80))}) must be host:port`;
  }
  if (!Number.isFinite(req.progressAgeMs) || req.progressAgeMs < 0) {
    return `progress_age_ms (${req.progressAgeMs}) must be a finite number >= 0`;
  }
  if (!/^[0-9a-f]{8,64}$/.test(req.incarnation)) {
    return `incarnation (${JSON.stringify(req.incarnation.slice(0, 80))}) must be 8-64 hex digits`;
  }
  return {
    rank: req.rank,
    phase,
    epoch: req.epoch,
    step: req.step,
    ringAddress: req.ringAddress,
    host: req.host.slice(0, 253),
    pid: req.pid,
    incarnation: req.incarnation,
    progressAgeMs: req.progressAgeMs,
  };
}

/** Serves one run's coordinator. */
export class CoordinatorServer {
  readonly board: RankBoard;
  private server: grpc.Server | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** `formGeneration` calls waiting for ranks: re-checked on every heartbeat, failed on close. */
  private readonly waiters = new Map<() => void, (err: Error) => void>();
  private closed = false;
  /** The ranks the rendezvous in progress still waits for. */
  private missing: readonly number[] = [];

  constructor(private readonly opts: CoordinatorServerOptions) {
    if (!/^[A-Za-z0-9._-]+$/.test(opts.runId))
      throw new TypeError(`CoordinatorServer: bad runId ${opts.runId}`);
    this.board = new RankBoard(opts.clock ?? { now: () => performance.now() }, opts.timings);
  }

  /** Binds and starts serving and judging; resolves with the bound "host:port". */
  async start(address: BindAddress): Promise<string> {
    if (this.server || this.closed) throw new Error('CoordinatorServer.start: already started or closed');
    const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_REQUEST_BYTES });
    const handlers: CoordinatorServiceHandlers = {
      heartbeat: (call, answer) => answer(...this.heartbeat(call.request)),
    };
    const auth = new RunTokenVerifier(this.opts.token, `coordinator of run ${this.opts.runId}`);
    server.addService(CoordinatorServiceDefinition, auth.guard(handlers));
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(
        formatHostPort(address.host, address.port),
        grpc.ServerCredentials.createInsecure(),
        (err, bound) => (err ? reject(err) : resolve(bound)),
      );
    }).catch((err: unknown) => {
      server.forceShutdown();
      throw err;
    });
    this.server = server;
    const tickMs = this.opts.tickMs ?? 500;
    if (tickMs > 0) {
      this.timer = setInterval(() => this.judge(), tickMs);
      this.timer.unref();
    }
    return formatHostPort(
      address.host === '0.0.0.0' || address.host === '::' ? '127.0.0.1' : address.host,
      port,
    );
  }

  private heartbeat(
    req: bbn.v1.HeartbeatRequest,
  ): [grpc.ServiceError | null, bbn.v1.HeartbeatResponse.$Properties | null] {
    const refuse = (code: grpc.status, details: string) =>
      [Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() }), null] as [
        grpc.ServiceError,
        null,
      ];
    if (req.runId !== this.opts.runId) {
      return refuse(
        grpc.status.NOT_FOUND,
        `run_id (${JSON.stringify(req.runId.slice(0, 80))}) is not this coordinator's run`,
      );
    }
    const beat = beatOf(req);
    if (typeof beat === 'string') return refuse(grpc.status.INVALID_ARGUMENT, `heartbeat: ${beat}`);
    this.board.record(beat);
    for (const check of [...this.waiters.keys()]) check();
    const t = this.board.timings;
    return [null, { heartbeatIntervalMs: t.heartbeatIntervalMs, heartbeatTimeoutMs: t.heartbeatTimeoutMs }];
  }

  /** Reports every newly silent rank of the watched generation (the timer calls it each second). */
  judge(): RankVerdict[] {
    const verdicts = this.board.judge();
    for (const v of verdicts) this.opts.onLost?.(v);
    return verdicts;
  }

  /**
   * The rendezvous of generation `generation` of `world` ranks: resolves with every rank's ring
   * address once each has heartbeated since the call (about a second: only living processes
   * count), and from then on watches them. Rejects with RendezvousTimeoutError (naming the missing
   * ranks) after `timeoutMs`, or when `signal` aborts.
   */
  formGeneration(
    world: number,
    generation: number,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<string[]> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      let notice: NodeJS.Timeout | undefined;
      const done = (settle: () => void) => {
        this.waiters.delete(check);
        this.missing = [];
        clearTimeout(timer);
        clearTimeout(notice);
        signal?.removeEventListener('abort', abort);
        settle();
      };
      // The previous generation is over: a rank already lost in it must not be reported again.
      this.board.unwatch();
      const since = this.board.now();
      const check = () => {
        const r = this.board.roster(world, since);
        this.missing = 'missing' in r ? r.missing : [];
        if ('peers' in r) {
          this.board.watch(world, generation);
          done(() => resolve(r.peers));
        }
      };
      const abort = () => done(() => reject(signal?.reason ?? new Error('formGeneration aborted')));
      if (this.closed) return reject(new Error('CoordinatorServer is closed'));
      if (signal?.aborted) return abort();
      timer = setTimeout(() => {
        const r = this.board.roster(world, since);
        done(() => reject(new RendezvousTimeoutError('missing' in r ? r.missing : [], timeoutMs)));
      }, timeoutMs);
      signal?.addEventListener('abort', abort, { once: true });
      this.waiters.set(check, (err) => done(() => reject(err)));
      const started = performance.now();
      const tell = () => {
        const waitedMs = performance.now() - started;
        this.opts.onWaiting?.({ generation, missing: this.missing, waitedMs });
        notice = setTimeout(tell, WAIT_NOTICE_REPEAT_MS);
      };
      if (this.opts.onWaiting) notice = setTimeout(tell, WAIT_NOTICE_MS);
      check();
    });
  }

  /**
   * Takes over the watch of a generation a previous coordinator process formed: this process was
   * started again (a SIGKILLed coordinator pod) while that generation trains, so no rendezvous here
   * set the watch, and without it a rank that freezes would be left to the 10 s activity
   * heartbeat timeout. Judges ranks 0..world-1 of `generation` from now, as `formGeneration` would
   * have; only when nothing is watched, no rendezvous is in progress, and a rank of the world says
   * it trains (a generation is formed, not forming). Returns whether it took the watch.
   */
  adopt(world: number, generation: number): boolean {
    if (this.closed || this.board.watchedGeneration() !== null || this.waiters.size > 0) return false;
    const training = this.board.snapshot().some((h) => h.beat.rank < world && h.beat.phase === 'training');
    if (!training) return false;
    this.board.watch(world, generation);
    return true;
  }

  /**
   * The generation whose ranks are watched now, or null while none is (before the first
   * rendezvous, and while a new generation forms). A loss seen now was a rank of that generation.
   */
  watchedGeneration(): number | null {
    return this.board.watchedGeneration();
  }

  /** The ranks a rendezvous in progress still waits for (none when no rendezvous is). */
  waitingFor(): readonly number[] {
    return this.missing;
  }

  /** Stops serving and judging; pending rendezvous fail. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const fail of [...this.waiters.values()]) fail(new Error('the coordinator closed'));
    const server = this.server;
    this.server = null;
    if (!server) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => server.forceShutdown(), 1_000);
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }
}
