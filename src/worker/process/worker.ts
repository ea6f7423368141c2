/**
 * One rank of a distributed run, end to end: load data and the model (identical init on every
 * rank), serve the ring, Join the coordinator, heartbeat, and train every epoch on the shards the
 * coordinator streams, summing gradients with the ring allreduce. Rank 0 owns the run directory:
 * it evaluates, appends metrics, checkpoints and writes the summary exactly as `runTraining`.
 *
 * Stopping is agreed, not local: every step's allreduce carries one extra value, the number of
 * ranks that want to stop (Ctrl-C, or the coordinator's STOP), so all ranks stop after the same
 * step and rank 0's checkpoint describes every rank's state.
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { type Allreducer, CollectiveServer, RingAllreduce } from '../../collective/index.ts';
import type { RunConfig } from '../../core/config.ts';
import { epochSchedule, shardRange } from '../../core/index.ts';
import { Rng } from '../../core/rng.ts';
import { loadData } from '../../data/load.ts';
import type { bbn } from '../../generated/bbn.js';
import { selectBackend } from '../../model/backend.ts';
import { createModel } from '../../model/factory.ts';
import { readCheckpoint } from '../checkpoint.ts';
import { RunRecorder } from '../recorder.ts';
import { modelSpecFor } from '../run.ts';
import { restoreFrom, saveCheckpoint } from '../run-checkpoint.ts';
import { type EpochMetrics, initRunDir, type RunSummary, readMetrics, rewriteMetrics } from '../run-dir.ts';
import { type StepReport, Trainer, type TrainerState } from '../trainer.ts';
import { ChecksumStatus, CoordinatorClient, type ShardStream, WorkerState } from './coordinator-client.ts';
import { Heartbeats } from './heartbeats.ts';

/** A failure of this rank that its message fully explains (printed as one line by the CLI). */
export class WorkerError extends Error {
  override name = 'WorkerError';
  readonly userFacing = true;
}

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
  readonly onStep?: (report: StepReport) => void;
  /** Called on rank 0 after each epoch's evaluation and checkpoint. Must not throw or block. */
  readonly onEpoch?: (metrics: EpochMetrics) => void;
}

/** How this rank's run ended. */
export type WorkerOutcome =
  | { readonly kind: 'finished'; readonly rank: number; readonly summary?: RunSummary }
  | { readonly kind: 'stopped'; readonly rank: number; readonly epoch: number; readonly step: number };

/** SHA-256 of a Float32Array's bytes (the replica checksum of the flat parameters). */
export function paramsDigest(params: Float32Array): Uint8Array {
  return createHash('sha256')
    .update(new Uint8Array(params.buffer, params.byteOffset, params.byteLength))
    .digest();
}

/** Digest of the resolved config; every rank of a run must send the same one. */
export function configDigest(cfg: RunConfig): string {
  return createHash('sha256').update(JSON.stringify(cfg)).digest('hex');
}

const CALL_TIMEOUT_MS = 10_000;
/** Ring progress bound: rank 0 evaluates while the others wait in the next step's allreduce. */
const RING_TIMEOUT_MS = 600_000;

/** Runs one rank until the run finishes, is stopped, or fails (then throws, naming the cause). */
export async function runWorker(opts: WorkerOptions): Promise<WorkerOutcome> {
  const { cfg } = opts;
  const say = opts.log ?? (() => {});
  const started = performance.now();
  const backend = await selectBackend(cfg.compute.backend, { threads: cfg.compute.threads });
  const data = await loadData(cfg.dataset);
  const model = createModel(modelSpecFor(cfg, data), Rng.fromSeed(cfg.seed).split('init'));
  const client = new CoordinatorClient(opts.coordinator);
  let server: CollectiveServer | undefined;
  let ring: Allreducer | undefined;
  let heartbeats: Heartbeats | undefined;
  let join: bbn.v1.JoinResponse | undefined;
  let stream: ShardStream | undefined;
  let fatal: Error | undefined;
  let recorder: RunRecorder | undefined;
  const fail = (err: Error) => {
    fatal ??= err;
    ring?.abort(err.message);
  };
  const runId = opts.runId ?? cfg.name;
  const workerId = `${hostname()}:${process.pid}`;
  try {
    const bindHost = opts.bindHost ?? '127.0.0.1';
    server = await CollectiveServer.listen({ host: bindHost, port: 0 });
    const port = server.address.slice(server.address.lastIndexOf(':') + 1);
    const address = opts.advertiseHost ? `${opts.advertiseHost}:${port}` : server.address;
    join = await client.join(
      {
        runId,
        rank: opts.rank,
        worldSize: cfg.distributed.workers,
        modelSignature: model.signature,
        address,
        workerId,
        host: hostname(),
        pid: process.pid,
        backend: backend.name,
        configDigest: configDigest(cfg),
      },
      opts.joinTimeoutMs ?? 120_000,
    );
    const { generation, rank, worldSize } = join;
    const me = { runId, generation, rank, workerId };
    say(`rank ${rank}/${worldSize} joined generation ${generation} (backend ${backend.name}, ${address})`);
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
    if (fatal) theRing.abort(fatal.message);
    // The gradient buffer plus one slot: how many ranks asked to stop after this step.
    let wire = new Float32Array(0);
    let agreedStop = false;
    const trainer = new Trainer(cfg, data, model, { rank, worldSize }, async (buf, tag) => {
      if (wire.length !== buf.length + 1) wire = new Float32Array(buf.length + 1);
      wire.set(buf);
      wire[buf.length] = wantStop || opts.shouldStop?.() ? 1 : 0;
      hb.progress.state = WorkerState.allreduce;
      await theRing.allreduce(wire, tag);
      hb.progress.state = WorkerState.computing;
      hb.progress.allreduceSequence++;
      buf.set(wire.subarray(0, buf.length));
      agreedStop = wire[buf.length] > 0;
    });

    const startEpoch = join.startEpoch || 1;
    let fromStep = join.startStep;
    let partial: TrainerState['partial'] | undefined;
    if (join.checkpointUri) {
      const checkpoint = readCheckpoint(join.checkpointUri, model.signature);
      restoreFrom({ path: join.checkpointUri, checkpoint, rejected: [] }, model, trainer);
      if (checkpoint.meta.epoch + 1 !== startEpoch || checkpoint.meta.step !== fromStep) {
        throw new WorkerError(
          `rank ${rank}: checkpoint ${join.checkpointUri} is at epoch ${checkpoint.meta.epoch + 1} step ${checkpoint.meta.step}, ` +
            `but the coordinator resumes at epoch ${startEpoch} step ${fromStep}`,
        );
      }
      partial = trainer.state().partial;
      if (rank === 0) rewriteMetrics(opts.outDir, readMetrics(opts.outDir, checkpoint.meta.epoch));
      say(`rank ${rank}: resumed from ${join.checkpointUri} at epoch ${startEpoch} step ${fromStep}`);
    } else if (rank === 0) {
      initRunDir(opts.outDir, cfg);
      rewriteMetrics(opts.outDir, []);
    }

    const epochs = trainer.epochs;
    const K = cfg.distributed.checksumEverySteps;
    for (let epoch = startEpoch; epoch <= epochs; epoch++) {
      const plan = await client.epochPlan({ runId, generation, epoch }, CALL_TIMEOUT_MS);
      checkPlan(cfg, plan, epoch, worldSize);
      const { offset } = shardRange(plan.globalBatch, rank, worldSize);
      stream = client.streamShard({ runId, generation, epoch, rank, fromStep });
      const shards = stream;
      let pendingChecksum: Promise<void> = Promise.resolve();
      const result = await trainer
        .trainEpoch(epoch, {
          fromStep,
          partial,
          steps: plan.steps,
          shouldStop: () => agreedStop,
          rowsOf: async (step) => {
            await pendingChecksum;
            if (fatal) throw fatal;
            const s = await shards.next(step);
            if (s.planDigest !== plan.planDigest) {
              throw new WorkerError(
                `rank ${rank}: epoch ${epoch} step ${step} shard has plan digest ${s.planDigest}, the plan says ${plan.planDigest}`,
              );
            }
            return { offset, uniform: s.uniform, reversed: s.reversed };
          },
          onStep: (r) => {
            Object.assign(hb.progress, {
              epoch,
              step: r.step,
              stepMs: 1000 * (r.computeSeconds + r.reduceSeconds),
              computeMs: 1000 * r.computeSeconds,
              allreduceWaitMs: 1000 * r.reduceSeconds,
            });
            opts.onStep?.(r);
            if (r.step % K === 0) {
              pendingChecksum = checkReplica(
                client,
                { ...me, epoch, step: r.step - 1 },
                model.getParams(),
              ).catch((err: Error) => fail(err));
            }
          },
        })
        .catch((err: unknown) => {
          throw fatal ?? err;
        });
      await pendingChecksum;
      if (fatal) throw fatal;
      stream.close();
      stream = undefined;
      fromStep = 0;
      partial = undefined;
      if (!result.complete) {
        const position = { epoch: epoch - 1, step: result.stepsDone };
        if (rank === 0) {
          hb.progress.state = WorkerState.checkpointing;
          const path = await saveCheckpoint(opts.outDir, cfg, model, trainer, position);
          say(`rank 0: stopped at epoch ${epoch} step ${result.stepsDone}; checkpoint ${path}`);
        }
        return { kind: 'stopped', rank, ...position };
      }
      if (rank === 0) {
        hb.progress.state = WorkerState.evaluating;
        recorder ??= new RunRecorder(opts.outDir, cfg, data, model, trainer);
        const m = await recorder.finishEpoch(result);
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
    recorder ??= new RunRecorder(opts.outDir, cfg, data, model, trainer);
    const summary = await recorder.finishRun({
      seconds: (performance.now() - started) / 1000,
      backend: backend.name,
    });
    return { kind: 'finished', rank, summary };
  } catch (err) {
    const cause = fatal ?? (err as Error);
    await heartbeats?.reportFailure(cause.message);
    throw cause;
  } finally {
    recorder?.close();
    heartbeats?.stop();
    stream?.close();
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
    model.dispose();
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

/** Reports the weights' digest; a MISMATCH is a WorkerError naming the diverged ranks. */
async function checkReplica(
  client: CoordinatorClient,
  at: { runId: string; generation: number; rank: number; epoch: number; step: number },
  params: Float32Array,
): Promise<void> {
  const res = await client.reportChecksum(
    { ...at, checksum: paramsDigest(params), algorithm: 'sha256-f32-params' },
    CALL_TIMEOUT_MS,
  );
  if (res.status === ChecksumStatus.mismatch) {
    throw new WorkerError(
      `replicas diverged at epoch ${at.epoch} step ${at.step}: ranks ${res.mismatchedRanks.join(', ')} differ from rank 0 (${res.message})`,
    );
  }
}
