/**
 * One run of the chaos loop: its pods (cluster.ts) and the run's state as `bbn status` reads it
 * (the workflow's progress and every rank's position from its activity heartbeats), which is what
 * the loop waits on: never a sleep. Also what ends a run: the workflow completes, every pod stops
 * on SIGTERM, and the world size each epoch trained with is read back from the workflow history
 * (the reference the final weights are compared with depends on it).
 */

import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { freePort } from '../../src/devservers/index.ts';
import { type RunStatus, runHandle, runStatus } from '../../src/orchestration/client.ts';
import { tempDir } from '../distributed/fixtures.ts';
import { Pod, type RestartableServer } from './cluster.ts';

/** What every run of the loop shares. */
export interface RunContext {
  readonly temporal: RestartableServer;
  readonly nats: RestartableServer;
  readonly client: Client;
  readonly configPath: string;
  readonly overrides: readonly string[];
  readonly children: ChildProcess[];
  readonly say: (line: string) => void;
}

/** Bound on any one wait of the loop: past it the run counts as hung and the loop fails. */
export const HANG_MS = 180_000;

/** How often the loop reads the run's status while it waits. */
const POLL_MS = 200;

/** A run's position: the rank furthest on in the current generation. */
export function position(s: RunStatus): { epoch: number; step: number } {
  const cur = s.ranks.filter((r) => r.generation === s.generation);
  const step = Math.max(0, ...cur.filter((r) => r.epoch === s.epoch).map((r) => r.step));
  return { epoch: s.epoch, step };
}

/** All ranks of the current generation have stepped in the current epoch. */
export function stepping(s: RunStatus): boolean {
  const cur = s.ranks.filter((r) => r.generation === s.generation && r.epoch === s.epoch && r.step >= 1);
  return s.state === 'training' && cur.length === s.workers;
}

/** One chaos run: a fresh run directory and run id, `workers` rank pods and a coordinator pod. */
export class ChaosRun {
  readonly outDir = tempDir('bbn-chaos-');
  readonly ranks: Pod[] = [];
  coordinator!: Pod;
  private coordinatorPort = 0;
  private readonly env: NodeJS.ProcessEnv;

  constructor(
    private readonly ctx: RunContext,
    readonly runId: string,
    readonly baseWorkers: number,
  ) {
    // The chart's credentials Secret: one token per run, shared by the coordinator and its ranks.
    this.env = { ...process.env, BBN_RUN_TOKEN: randomBytes(32).toString('hex') };
  }

  async start(): Promise<void> {
    this.coordinatorPort = await freePort();
    this.coordinator = new Pod(
      'coordinator',
      [
        'train',
        '--config',
        this.ctx.configPath,
        '--out',
        this.outDir,
        '--run-id',
        this.runId,
        '--workers',
        String(this.baseWorkers),
        '--temporal',
        this.ctx.temporal.address,
        '--external-workers',
        '--coordinator-host',
        '127.0.0.1',
        '--coordinator-port',
        String(this.coordinatorPort),
        '--nats',
        this.ctx.nats.address,
        ...this.ctx.overrides,
      ],
      this.ctx.children,
      this.env,
    );
    for (let r = 0; r < this.baseWorkers; r++) this.addRank();
  }

  /** Starts the pod of the next rank (a StatefulSet scaled up). */
  addRank(): Pod {
    const rank = this.ranks.length;
    const pod = new Pod(
      `rank ${rank}`,
      [
        'worker',
        '--rank',
        String(rank),
        '--temporal',
        this.ctx.temporal.address,
        '--run-id',
        this.runId,
        '--coordinator',
        `127.0.0.1:${this.coordinatorPort}`,
        '--host',
        '127.0.0.1',
        '--nats',
        this.ctx.nats.address,
      ],
      this.ctx.children,
      this.env,
    );
    this.ranks.push(pod);
    return pod;
  }

  /** Ends the pod of the last rank (a StatefulSet scaled down). */
  async removeRank(): Promise<void> {
    await this.ranks.pop()?.retire();
  }

  /** The run's status, or undefined while nothing answers (the server or the coordinator is down). */
  status(): Promise<RunStatus | undefined> {
    return runStatus(this.ctx.client, this.runId).catch(() => undefined);
  }

  /** The workflow's execution state (`RUNNING`, `COMPLETED`, …), or undefined while Temporal is down. */
  execution(): Promise<string | undefined> {
    return runHandle(this.ctx.client, this.runId)
      .describe()
      .then(
        (d) => d.status.name,
        () => undefined,
      );
  }

  /**
   * Polls the status until `cond` holds for it; resolves with that status and when it was seen.
   * `cond` also sees undefined (no answer) and the run's completion (`done`).
   */
  async until(
    what: string,
    cond: (s: RunStatus | undefined, done: boolean) => boolean,
  ): Promise<{ s: RunStatus | undefined; at: number; done: boolean }> {
    const deadline = performance.now() + HANG_MS;
    for (;;) {
      const s = await this.status();
      // A completed run's progress query may find no worker (the coordinator stopped serving it).
      const done = (s?.execution ?? (await this.execution())) === 'COMPLETED';
      const at = performance.now();
      if (cond(s, done)) return { s, at, done };
      const execution = s?.execution ?? (await this.execution());
      if (execution !== undefined && execution !== 'RUNNING' && execution !== 'COMPLETED') {
        throw new Error(
          `run ${this.runId} ended ${execution} while waiting for ${what}: ${s?.failures.at(-1)?.message ?? ''}`,
        );
      }
      if (at > deadline) {
        throw new Error(
          `hang: run ${this.runId} did not reach "${what}" within ${HANG_MS} ms\n${this.tails()}`,
        );
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /** The last lines of every pod's current process and how often each was started (for a failure's message). */
  tails(lines = 8): string {
    return [this.coordinator, ...this.ranks]
      .filter(Boolean)
      .map((p) => `--- ${p.name} (started ${p.starts}x):\n${p.lines.slice(-lines).join('\n')}`)
      .join('\n');
  }

  /** Waits for the workflow to complete, then stops every pod (SIGTERM) and checks each left cleanly. */
  async finish(): Promise<void> {
    await this.until('the run completes', (_s, done) => done);
    // The coordinator pod says when it serves nothing more (and from then on leaves on SIGTERM).
    await this.until('the coordinator has reported the end', () =>
      this.coordinator.lines.some((l) => l.startsWith('run ended; serving nothing more')),
    );
    const codes = await Promise.all([...this.ranks, this.coordinator].map((p) => p.retire()));
    if (codes.some((c) => c !== 0)) {
      throw new Error(
        `run ${this.runId}: a pod did not stop cleanly on SIGTERM (exit codes ${codes.join(', ')})`,
      );
    }
  }

  /** Ends every pod at once (a failed loop's cleanup). */
  async abort(): Promise<void> {
    await Promise.all([...this.ranks, this.coordinator].filter(Boolean).map((p) => p.retire()));
  }

  /** The world size each epoch trained with (the last `trainEpoch` scheduled for it), epochs 1..E. */
  async worldSizes(): Promise<number[]> {
    const history = await runHandle(this.ctx.client, this.runId).fetchHistory();
    const sizes = new Map<number, number>();
    for (const e of history.events ?? []) {
      const a = e.activityTaskScheduledEventAttributes;
      if (a?.activityType?.name !== 'trainEpoch') continue;
      const req = JSON.parse(Buffer.from(a.input?.payloads?.[0]?.data ?? []).toString()) as {
        epoch: number;
        worldSize: number;
      };
      sizes.set(req.epoch, req.worldSize);
    }
    return [...sizes].sort(([a], [b]) => a - b).map(([, w]) => w);
  }
}
