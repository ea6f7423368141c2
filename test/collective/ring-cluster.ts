/**
 * W ring ranks as real child processes (ring-child.ts run by tsx), each with its own peer server
 * on 127.0.0.1:0 that reports its address back. A disposable: `dispose()` stops every child,
 * killing those that do not exit in time.
 */
import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RingAllreduceOptions } from '../../src/collective/index.ts';

/** One injected misbehaviour of one rank. */
export interface FaultSpec {
  /** 'block' blocks the rank's main thread synchronously for `blockMs`, then sends the frame. */
  /** 'unknown-field' appends an unknown protobuf field to every frame from `frameIndex` on (a valid chunk in another encoding). */
  readonly kind: 'garbage' | 'wrong-step' | 'short-chunk' | 'stall' | 'block' | 'unknown-field';
  /** Allreduce sequence number (0 = first allreduce of the ring). */
  readonly sequence: number;
  /** Index of the outgoing frame that misbehaves ('stall' stops from this frame on). */
  readonly frameIndex: number;
  /** How long 'block' blocks. */
  readonly blockMs?: number;
}

/** A collective error as it crosses the IPC channel. */
export interface SerializedError {
  name: string;
  message: string;
  kind?: string;
  peerRank?: number;
  originRank?: number;
  waitingOn?: number[];
}

/** Ring options the parent chooses (the child adds its server). */
export type ChildRingOptions = Omit<RingAllreduceOptions, 'server' | 'listen'>;

/** Parent → child. */
export type ToChild =
  | { type: 'create'; opts: ChildRingOptions; fault?: FaultSpec }
  | {
      type: 'allreduce';
      id: number;
      n: number;
      seed: string;
      tag: { epoch: number; step: number };
      returnData: boolean;
    }
  | { type: 'block'; ms: number }
  | { type: 'exit' };

/** Child → parent. */
export type FromChild =
  | { type: 'listening'; address: string }
  | { type: 'created'; generation: number }
  | { type: 'create-failed'; generation: number; error: SerializedError }
  | { type: 'fault'; kind: string; at: number }
  | { type: 'allreduce-done'; id: number; data?: Float32Array; at: number }
  | { type: 'allreduce-failed'; id: number; error: SerializedError; at: number };

/** How one rank's allreduce ended. */
export type Outcome =
  | { rank: number; ok: true; data?: Float32Array; at: number }
  | { rank: number; ok: false; error: SerializedError; at: number }
  | { rank: number; ok: false; exited: true; at: number };

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'ring-child.ts');

/** W ranks in W processes. */
export class RingCluster {
  private nextId = 0;
  /** Last ~4 KB of each child's stderr, for failure messages. */
  private readonly logs: string[];

  private constructor(
    private readonly children: ChildProcess[],
    /** Peer address of each rank. */
    readonly addresses: string[],
  ) {
    this.logs = children.map(() => '');
    children.forEach((c, r) => {
      c.stderr?.on('data', (b: Buffer) => {
        this.logs[r] = (this.logs[r] + b.toString()).slice(-4096);
      });
    });
  }

  /**
   * Forks W children and waits until each reports its bound address. `keepaliveMs` is their
   * peer servers' ping interval and timeout, which their rings inherit; default the shipped one.
   */
  static async start(worldSize: number, options: { keepaliveMs?: number } = {}): Promise<RingCluster> {
    const children = Array.from({ length: worldSize }, () =>
      fork(CHILD, [String(options.keepaliveMs ?? '')], {
        execArgv: ['--import', 'tsx'],
        serialization: 'advanced',
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      }),
    );
    try {
      const listening = await Promise.all(
        children.map((c) => next(c, (m) => m.type === 'listening') as Promise<{ address: string }>),
      );
      return new RingCluster(
        children,
        listening.map((l) => l.address),
      );
    } catch (err) {
      for (const c of children) c.kill('SIGKILL');
      throw err;
    }
  }

  /** Number of ranks. */
  get worldSize(): number {
    return this.children.length;
  }

  /** Creates a ring of `generation` on every rank (optionally with faults by rank). */
  async create(
    generation: number,
    opts: Partial<ChildRingOptions> = {},
    faults: Record<number, FaultSpec> = {},
  ): Promise<void> {
    const done = this.children.map((c) =>
      next(c, (m) => (m.type === 'created' || m.type === 'create-failed') && m.generation === generation),
    );
    this.children.forEach((c, rank) => {
      const msg: ToChild = {
        type: 'create',
        opts: {
          runId: 'proc-run',
          generation,
          ...opts,
          rank,
          worldSize: this.worldSize,
          peers: this.addresses,
        },
        fault: faults[rank],
      };
      c.send(msg);
    });
    const results = await Promise.all(done);
    const failed = results.find((m) => m.type === 'create-failed');
    if (failed && failed.type === 'create-failed') throw new Error(`create failed: ${failed.error.message}`);
  }

  /** Starts one allreduce on every rank; resolves when every rank reported (or exited). */
  allreduce(
    n: number,
    seed: string,
    tag: { epoch: number; step: number },
    options: { returnData?: boolean } = {},
  ): Promise<Outcome[]> {
    return Promise.all(this.allreduceEach(n, seed, tag, options));
  }

  /** Starts one allreduce on every rank; one promise per rank, settling when that rank reports or exits. */
  allreduceEach(
    n: number,
    seed: string,
    tag: { epoch: number; step: number },
    options: { returnData?: boolean } = {},
  ): Promise<Outcome>[] {
    const id = this.nextId++;
    return this.children.map((_, rank) => {
      const child = this.children[rank];
      const outcome = new Promise<Outcome>((resolve) => {
        const onMsg = (m: FromChild): void => {
          if ((m.type === 'allreduce-done' || m.type === 'allreduce-failed') && m.id === id) {
            cleanup();
            resolve(
              m.type === 'allreduce-done'
                ? { rank, ok: true, data: m.data, at: m.at }
                : { rank, ok: false, error: m.error, at: m.at },
            );
          }
        };
        const onExit = (): void => {
          cleanup();
          resolve({ rank, ok: false, exited: true, at: Date.now() });
        };
        const cleanup = (): void => {
          child.off('message', onMsg);
          child.off('exit', onExit);
        };
        child.on('message', onMsg);
        child.once('exit', onExit);
      });
      const msg: ToChild = { type: 'allreduce', id, n, seed, tag, returnData: options.returnData ?? false };
      child.send(msg);
      return outcome;
    });
  }

  /** Resolves when rank `rank` reports that its injected fault fired. */
  fault(rank: number): Promise<{ at: number }> {
    return next(this.children[rank], (m) => m.type === 'fault') as Promise<{ at: number }>;
  }

  /** Blocks one rank's main thread synchronously for `ms` as soon as its IPC message arrives. */
  block(rank: number, ms: number): void {
    this.children[rank].send({ type: 'block', ms } satisfies ToChild);
  }

  /** Sends a signal to one rank's process. */
  signal(rank: number, sig: NodeJS.Signals): void {
    this.children[rank].kill(sig);
  }

  /** The tail of one rank's stderr. */
  log(rank: number): string {
    return this.logs[rank];
  }

  /** Asks every child to exit; kills any still running after 3 s. */
  async dispose(): Promise<void> {
    await Promise.all(
      this.children.map(async (c) => {
        if (c.exitCode !== null || c.signalCode !== null) return;
        const exited = new Promise<void>((r) => c.once('exit', () => r()));
        if (c.connected) c.send({ type: 'exit' } satisfies ToChild);
        const timer = setTimeout(() => c.kill('SIGKILL'), 3_000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}

/** The next message from `child` matching `pick`; rejects if the child exits first. */
function next(child: ChildProcess, pick: (m: FromChild) => boolean): Promise<FromChild> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: FromChild): void => {
      if (!pick(m)) return;
      child.off('exit', onExit);
      child.off('message', onMsg);
      resolve(m);
    };
    const onExit = (code: number | null, sig: string | null): void => {
      child.off('message', onMsg);
      reject(new Error(`ring child exited (code ${code}, signal ${sig})`));
    };
    child.on('message', onMsg);
    child.once('exit', onExit);
  });
}

/**
 * Rejects if `promise` has not settled within `ms`, so a test that would hang fails instead and
 * its cleanup (killing children) still runs.
 */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
