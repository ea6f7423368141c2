/**
 * One rank of a distributed run, end to end: serve the ring, Join the coordinator, heartbeat, and
 * train every epoch on the shards the coordinator streams, summing gradients with the ring
 * allreduce. Rank 0 owns the run directory: it evaluates, appends metrics, checkpoints and writes
 * the summary exactly as `runTraining`.
 *
 * Two threads: this one keeps its event loop free for gRPC (ring streams, heartbeats, the shard
 * stream); the compute thread (compute-thread.ts) owns the backend, the data, the model, the
 * trainer and rank 0's recorder, and hands each step's gradient here for the allreduce.
 *
 * Stopping is agreed, not local: every step's allreduce carries one extra value, the number of
 * ranks that want to stop (Ctrl-C, or the coordinator's STOP), so all ranks stop after the same
 * step and rank 0's checkpoint describes every rank's state.
 */
import { hostname } from 'node:os';
import { type Allreducer, CollectiveServer, RingAllreduce } from '../../collective/index.ts';
import type { RunConfig } from '../../core/config.ts';
import { epochSchedule, shardRange, totalEpochs } from '../../core/index.ts';
import type { bbn } from '../../generated/bbn.js';
import type { EpochMetrics, RunSummary } from '../run-dir.ts';
import type { StepReport } from '../trainer.ts';
import { ComputeThread } from './compute-thread.ts';
import { ChecksumStatus, CoordinatorClient, type ShardStream, WorkerState } from './coordinator-client.ts';
import { configDigest } from './digests.ts';
import { WorkerError } from './errors.ts';
import { Heartbeats } from './heartbeats.ts';

export { configDigest, paramsDigest } from './digests.ts';
export { WorkerError } from './errors.ts';

/** Options of `runWorker`. */
export interface WorkerOptions {
  /** The resolved run config (same file and overrides as the coordinator's). */
  readonly cfg: RunConfig;
  /** Coordinator address, host:port. */
  readonly coordinator: string;
  /** Run directory (written by rank 0 only). */
  readonly outDir: string;
  /** Rank to insist on (e.g. a StatefulSet ordinal); absent: the coordinator assigns one. */
  readonly rank?: number;
  /** Run id the coordinator serves; default the config name. */
  readonly runId?: string;
  /** Interface the ring's peer server binds; default 127.0.0.1. */
  readonly bindHost?: string;
  /** Host the other ranks dial; default `bindHost`. */
  readonly advertiseHost?: string;
  /** Bound on the rendezvous as this worker waits for it; default 120 s. */
  readonly joinTimeoutMs?: number;
  /** Polled between steps: true asks the world to stop after the current step. */
  readonly shouldStop?: () => boolean;
  /** Progress lines for humans. */
  readonly log?: (line: string) => void;
  /** Called after every step of this rank (telemetry: metrics, events). Must not throw or block. */
  readonly onStep?: (report: StepReport & { readonly allreduceBytes?: number }) => void;
  /** Called on rank 0 after each epoch's evaluation and checkpoint. Must not throw or block. */
  readonly onEpoch?: (metrics: EpochMetrics) => void;
}

/** How this rank's run ended. */
export type WorkerOutcome =
  | { readonly kind: 'finished'; readonly rank: number; readonly summary?: RunSummary }
  | { readonly kind: 'stopped'; readonly rank: number; readonly epoch: number; readonly step: number };

const CALL_TIMEOUT_MS = 10_000;
/** Ring progress bound: rank 0 evaluates while the others wait in the next step's allreduce. */
const RING_TIMEOUT_MS = 600_000;
/** How long a compute thread may take to free its model at the end (a failed rank waits less). */
const CLOSE_GRACE_MS = 10_000;
const CLOSE_GRACE_FAILED_MS = 1_000;

/** Runs one rank until the run finishes, is stopped, or fails (then throws, naming the cause). */
export async function runWorker(opts: WorkerOptions): Promise<WorkerOutcome> {
  const { cfg } = opts;
  const say = opts.log ?? (() => {});
  const started = performance.now();
  const client = new CoordinatorClient(opts.coordinator);
  let compute: ComputeThread | undefined;
  let server: CollectiveServer | undefined;
  let ring: Allreducer | undefined;
  let heartbeats: Heartbeats | undefined;
  let join: bbn.v1.JoinResponse | undefined;
  let stream: ShardStream | undefined;
  let fatal: Error | undefined;
  const fail = (err: Error) => {
    fatal ??= err;
    ring?.abort(err.message);
    compute?.fail(err);
  };
  const runId = opts.runId ?? cfg.name;
  const workerId = `${hostname()}:${process.pid}`;
  try {
    const opened = await ComputeThread.open({ cfg, outDir: opts.outDir });
    compute = opened.thread;
    const { backend, signature } = opened.ready;
    const bindHost = opts.bindHost ?? '127.0.0.1';
    server = await CollectiveServer.listen({ host: bindHost, port: 0 });
    const port = server.address.slice(server.address.lastIndexOf(':') + 1);
    const address = opts.advertiseHost ? `${opts.advertiseHost}:${port}` : server.address;
    join = await client.join(
      {
        runId,
        rank: opts.rank,
        worldSize: cfg.distributed.workers,
        modelSignature: signature,
        address,
        workerId,
        host: hostname(),
        pid: process.pid,
        backend,
        configDigest: configDigest(cfg),
      },
      opts.joinTimeoutMs ?? 120_000,
    );
    const { generation, rank, worldSize } = join;
    const me = { runId, generation, rank, workerId };
    say(`rank ${rank}/${worldSize} joined generation ${generation} (backend ${backend}, ${address})`);
    let wantStop = false;
    heartbeats = new Heartbeats(
      client,
      { ...me, intervalMs: join.heartbeatIntervalMs, timeoutMs: join.heartbeatTimeoutMs },
      {
        onAbort: (message) => fail(new WorkerError(`rank ${rank}: aborted by the coordinator: ${message}`)),
        onStop: () => {
          wantStop = true;
        },
        onLost: (err) => fail(new WorkerError(`rank ${rank}: lost the coordinator: ${err.message}`)),
      },
    );
    heartbeats.start();
    const hb = heartbeats;
    ring = await RingAllreduce.create({
      runId,
      generation,
      rank,
      worldSize,
      peers: join.members.map((m) => m.address ?? ''),
      server,
      chunkBytes: cfg.distributed.chunkBytes,
      compress: cfg.distributed.compressBf16 ? 'bf16' : 'none',
      timeoutMs: RING_TIMEOUT_MS,
    });
    const theRing = ring;
    /** Bytes this rank sent in the last allreduce (for the step's telemetry). */
    let allreduceBytes: number | undefined;
    if (fatal) throw fatal;

    const startEpoch = join.startEpoch || 1;
    let fromStep = join.startStep;
    const { resumed } = await compute.start({
      rank,
      worldSize,
      checkpointUri: join.checkpointUri,
      startEpoch,
      startStep: fromStep,
    });
    if (resumed)
      say(`rank ${rank}: resumed from ${join.checkpointUri} at epoch ${startEpoch} step ${fromStep}`);

    const epochs = totalEpochs(cfg);
    const K = cfg.distributed.checksumEverySteps;
    for (let epoch = startEpoch; epoch <= epochs; epoch++) {
      const plan = await client.epochPlan({ runId, generation, epoch }, CALL_TIMEOUT_MS);
      checkPlan(cfg, plan, epoch, worldSize);
      const { offset } = shardRange(plan.globalBatch, rank, worldSize);
      stream = client.streamShard({ runId, generation, epoch, rank, fromStep });
      const shards = stream;
      let pendingChecksum: Promise<void> = Promise.resolve();
      const result = await compute
        .trainEpoch(
          { epoch, steps: plan.steps, fromStep, offset, checksumEverySteps: K },
          {
            rows: async (step) => {
              await pendingChecksum;
              if (fatal) throw fatal;
              const s = await shards.next(step);
              if (s.planDigest !== plan.planDigest) {
                throw new WorkerError(
                  `rank ${rank}: epoch ${epoch} step ${step} shard has plan digest ${s.planDigest}, the plan says ${plan.planDigest}`,
                );
              }
              return { uniform: s.uniform, reversed: s.reversed };
            },
            // The wire is the gradient plus one slot: how many ranks ask to stop after this step.
            reduce: async (wire, tag) => {
              wire[wire.length - 1] = wantStop || opts.shouldStop?.() ? 1 : 0;
              hb.progress.state = WorkerState.allreduce;
              const sent = theRing.stats().bytesSent;
              await theRing.allreduce(wire, tag);
              allreduceBytes = theRing.stats().bytesSent - sent;
              hb.progress.state = WorkerState.computing;
              hb.progress.allreduceSequence++;
            },
            step: (r, digest) => {
              Object.assign(hb.progress, {
                epoch,
                step: r.step,
                stepMs: 1000 * (r.computeSeconds + r.reduceSeconds),
                computeMs: 1000 * r.computeSeconds,
                allreduceWaitMs: 1000 * r.reduceSeconds,
              });
              opts.onStep?.({ ...r, allreduceBytes });
              if (digest) {
                pendingChecksum = checkReplica(client, { ...me, epoch, step: r.step - 1 }, digest).catch(
                  (err: Error) => fail(err),
                );
              }
            },
          },
        )
        .catch((err: unknown) => {
          throw fatal ?? err;
        });
      await pendingChecksum;
      if (fatal) throw fatal;
      stream.close();
      stream = undefined;
      fromStep = 0;
      if (!result.complete) {
        const position = { epoch: epoch - 1, step: result.stepsDone };
        if (rank === 0) {
          hb.progress.state = WorkerState.checkpointing;
          const path = await compute.saveCheckpoint(position);
          say(`rank 0: stopped at epoch ${epoch} step ${result.stepsDone}; checkpoint ${path}`);
        }
        return { kind: 'stopped', rank, ...position };
      }
      if (rank === 0) {
        hb.progress.state = WorkerState.evaluating;
        const m = await compute.finishEpoch(result);
        opts.onEpoch?.(m);
        say(
          `epoch ${epoch}/${epochs} loss ${m.trainLoss.toFixed(4)} top1 ${(100 * m.testTop1).toFixed(2)}% ` +
            `${m.stepsPerSecond.toFixed(2)} steps/s`,
        );
      } else {
        say(
          `rank ${rank}: epoch ${epoch}/${epochs} done, ${(result.steps / result.seconds).toFixed(2)} steps/s`,
        );
      }
      hb.progress.state = WorkerState.idle;
    }
    if (rank !== 0) return { kind: 'finished', rank };
    const summary = await compute.finishRun({ seconds: (performance.now() - started) / 1000, backend });
    return { kind: 'finished', rank, summary };
  } catch (err) {
    const cause = fatal ?? (err as Error);
    fatal ??= cause;
    await heartbeats?.reportFailure(cause.message);
    throw cause;
  } finally {
    heartbeats?.stop();
    stream?.close();
    // Ends the thread before the ring: a thread still in a step must not find its allreduce gone.
    await compute?.close(fatal ? CLOSE_GRACE_FAILED_MS : CLOSE_GRACE_MS);
    if (join) {
      await client
        .leave(
          {
            runId,
            generation: join.generation,
            rank: join.rank,
            workerId,
            reason: fatal ? fatal.message : 'finished',
            exitCode: fatal ? 1 : 0,
          },
          CALL_TIMEOUT_MS,
        )
        .catch(() => {});
    }
    await ring?.close().catch(() => {});
    await server?.close().catch(() => {});
    client.close();
  }
}

/** The coordinator's plan must be the one this rank computes itself (one α per epoch). */
export function checkPlan(cfg: RunConfig, plan: bbn.v1.EpochPlan, epoch: number, worldSize: number): void {
  const { alpha, lr } = epochSchedule(cfg, epoch);
  const want = alpha ?? Number.NaN;
  const same = (a: number, b: number) => a === b || (Number.isNaN(a) && Number.isNaN(b));
  const problems: string[] = [];
  if (plan.epoch !== epoch) problems.push(`epoch ${plan.epoch} (asked for ${epoch})`);
  if (!same(plan.alpha, want)) problems.push(`alpha ${plan.alpha} (this rank computes ${want})`);
  if (plan.lr !== lr) problems.push(`lr ${plan.lr} (this rank computes ${lr})`);
  if (plan.globalBatch !== cfg.train.batchSize)
    problems.push(`global_batch ${plan.globalBatch} (config ${cfg.train.batchSize})`);
  if (plan.worldSize !== worldSize) problems.push(`world_size ${plan.worldSize} (joined ${worldSize})`);
  if (problems.length > 0) {
    throw new WorkerError(
      `the coordinator's plan of epoch ${epoch} disagrees with this rank's config: ${problems.join(', ')}`,
    );
  }
}

/** Reports the weights' digest (computed by the compute thread); a MISMATCH is a WorkerError naming the diverged ranks. */
async function checkReplica(
  client: CoordinatorClient,
  at: { runId: string; generation: number; rank: number; epoch: number; step: number },
  checksum: Uint8Array,
): Promise<void> {
  const res = await client.reportChecksum(
    { ...at, checksum, algorithm: 'sha256-f32-params' },
    CALL_TIMEOUT_MS,
  );
  if (res.status === ChecksumStatus.mismatch) {
    throw new WorkerError(
      `replicas diverged at epoch ${at.epoch} step ${at.step}: ranks ${res.mismatchedRanks.join(', ')} differ from rank 0 (${res.message})`,
    );
  }
}
