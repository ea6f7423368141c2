/**
 * The compute thread of a worker rank (started by compute-thread.ts): it selects the backend,
 * loads the data, builds the model, trains on `Trainer` and, on rank 0, records the run directory.
 * Everything that blocks for a step's length happens here, so the main thread's event loop stays
 * free for gRPC. The thread asks the main thread for the ring allreduce of each step's gradient,
 * whole or by segment during the backward pass (protocol: compute-protocol.ts).
 */
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import type { RunConfig } from '../../core/config.ts';
import { planDigest } from '../../core/epoch-plan.ts';
import { Rng } from '../../core/rng.ts';
import type { LoadedData } from '../../data/api.ts';
import type { Model } from '../../model/api.ts';
import { selectBackend } from '../../model/backend.ts';
import { createModel } from '../../model/factory.ts';
import { readCheckpoint } from '../checkpoint.ts';
import { RunRecorder } from '../recorder.ts';
import { modelSpecFor } from '../run.ts';
import { loadRestorable, restoreFrom, saveCheckpoint } from '../run-checkpoint.ts';
import { initRunDir, readMetrics, rewriteMetrics } from '../run-dir.ts';
import { loadRunData } from '../run-inputs.ts';
import { Trainer, type TrainerState } from '../trainer.ts';
import {
  type CommandName,
  type Commands,
  type ComputeInit,
  errorInfo,
  type MainMessage,
  type ReduceTag,
  type ThreadMessage,
} from './compute-protocol.ts';
import { paramsDigest } from './digests.ts';
import { WorkerError } from './errors.ts';

/** A request of this thread that the main thread refused (its message is the main side's error). */
class RefusedError extends Error {
  override name = 'RefusedError';
}

type Waiter = { resolve(m: MainMessage): void; reject(err: Error): void };

/** This thread's requests to the main thread, matched to their answers by id. */
class MainLink {
  private nextId = 1;
  /** Requests posted and not yet answered, by id. */
  private readonly waiting = new Map<number, Waiter>();

  constructor(private readonly port: MessagePort) {}

  post(msg: ThreadMessage, transfer: ArrayBuffer[] = []): void {
    this.port.postMessage(msg, transfer);
  }

  /** Hands `wire` over (transferred, zero copy) for the ring allreduce and returns the reduced buffer. */
  async reduce(wire: Float32Array, tag: ReduceTag): Promise<Float32Array> {
    const m = await this.request((id) =>
      this.post({ type: 'reduce', id, wire, ...tag }, [wire.buffer as ArrayBuffer]),
    );
    if (m.type !== 'reduced') throw new Error(`compute thread: answer '${m.type}' to a reduce request`);
    return m.wire;
  }

  private request(send: (id: number) => void): Promise<MainMessage> {
    const id = this.nextId++;
    return new Promise<MainMessage>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      send(id);
    });
  }

  /** Settles the request an answer belongs to. */
  answer(msg: Extract<MainMessage, { id: number; type: 'reduced' | 'refused' }>): void {
    const w = this.waiting.get(msg.id);
    if (!w) return;
    this.waiting.delete(msg.id);
    if (msg.type === 'refused') w.reject(new RefusedError(msg.error.message));
    else w.resolve(msg);
  }
}

type Handlers = {
  [K in CommandName]: (args: Commands[K]['args']) => Promise<Commands[K]['result']> | Commands[K]['result'];
};

/**
 * The one rank runtime: the rank's model, trainer and (rank 0) recorder, driven by the main
 * thread's commands. Opening a run, resuming it, training an epoch with the main thread's
 * allreduce and stop vote, recording, checkpointing, digesting and disposing live here, for both
 * the durable (Temporal) ranks and the coordinator's streamed ranks.
 */
class ComputeSession implements Handlers {
  private trainer?: Trainer;
  /** Running sums of the epoch a mid-epoch checkpoint resumes; consumed by the first trainEpoch. */
  private resumePartial?: TrainerState['partial'];
  private recorder?: RunRecorder;
  /** The world's agreed stop vote, from the last allreduce of the running epoch. */
  private agreedStop = false;
  /** Wire buffers by length, reused step after step (each is detached while the main thread holds it). */
  private readonly wires = new Map<number, Float32Array[]>();
  /** The model of the current `start` (rebuilt from the seed by every later `start`). */
  private model: Model;
  private started = false;
  /** This rank's place in the world (from the last `start`). */
  private rank = 0;

  constructor(
    private readonly cfg: RunConfig,
    private readonly outDir: string,
    private readonly data: LoadedData,
    model: Model,
    private readonly link: MainLink,
  ) {
    this.model = model;
  }

  private get theTrainer(): Trainer {
    if (!this.trainer) throw new Error("compute thread: command before 'start'");
    return this.trainer;
  }

  start(args: Commands['start']['args']): Commands['start']['result'] {
    const { rank, worldSize, checkpointUri } = args;
    if (this.started) {
      // A new generation or membership: the same initial weights as the first start, then restore.
      this.recorder?.close();
      this.recorder = undefined;
      this.model.dispose();
      this.model = createModel(modelSpecFor(this.cfg, this.data), Rng.fromSeed(this.cfg.seed).split('init'));
    }
    this.started = true;
    this.rank = rank;
    const trainer = new Trainer(this.cfg, this.data, this.model, { rank, worldSize }, (buf, tag) =>
      this.reduce(buf, tag),
    );
    this.trainer = trainer;
    this.resumePartial = undefined;
    const latest =
      typeof checkpointUri === 'string'
        ? checkpointUri
          ? {
              path: checkpointUri,
              checkpoint: readCheckpoint(checkpointUri, this.model.signature),
              rejected: [],
            }
          : undefined
        : loadRestorable(this.outDir, this.model);
    const rejected = (latest?.rejected ?? []).map((r) => r.reason);
    if (!latest) {
      if (rank === 0 && checkpointUri === '') {
        initRunDir(this.outDir, this.cfg);
        rewriteMetrics(this.outDir, []);
      }
      return { resumed: false, epoch: 0, step: 0, rejected };
    }
    const { meta } = latest.checkpoint;
    restoreFrom(latest, this.model, trainer);
    if (
      args.startEpoch !== undefined &&
      (meta.epoch + 1 !== args.startEpoch || meta.step !== (args.startStep ?? 0))
    ) {
      throw new WorkerError(
        `rank ${rank}: checkpoint ${latest.path} is at epoch ${meta.epoch + 1} step ${meta.step}, ` +
          `but the coordinator resumes at epoch ${args.startEpoch} step ${args.startStep}`,
      );
    }
    this.resumePartial = meta.step > 0 ? trainer.state().partial : undefined;
    if (rank === 0 && typeof checkpointUri === 'string') {
      rewriteMetrics(this.outDir, readMetrics(this.outDir, meta.epoch));
    }
    return { resumed: true, epoch: meta.epoch, step: meta.step, path: latest.path, rejected };
  }

  plan(args: Commands['plan']['args']): Commands['plan']['result'] {
    const plan = this.theTrainer.plan(args.epoch);
    return { steps: plan.steps, digest: planDigest(plan) };
  }

  /**
   * The trainer's reducer: the step's buffer, or a piece of it (`tag.span`), is copied into a wire
   * buffer that crosses to the main thread and back (transferred, not copied). The step's wire is
   * the buffer plus one slot, the stop vote, so a piece's span is re-based on the wire's length
   * (the same ring partition as the whole wire's: bit-identical sums); the piece that ends the
   * buffer carries the vote.
   */
  private async reduce(buf: Float32Array, tag: ReduceTag): Promise<void> {
    const offset = tag.span?.offset ?? 0;
    const total = (tag.span?.total ?? buf.length) + 1;
    const votes = offset + buf.length === total - 1;
    const length = buf.length + (votes ? 1 : 0);
    const wire = this.wires.get(length)?.pop() ?? new Float32Array(length);
    wire.set(buf);
    const span = tag.span ? { offset, total } : undefined;
    const back = await this.link.reduce(wire, { ...tag, span });
    buf.set(back.subarray(0, buf.length));
    if (votes) this.agreedStop = back[buf.length] > 0;
    const free = this.wires.get(length) ?? [];
    free.push(back);
    this.wires.set(length, free);
  }

  trainEpoch(args: Commands['trainEpoch']['args']): Promise<Commands['trainEpoch']['result']> {
    const { epoch, steps, fromStep } = args;
    const partial = fromStep > 0 ? this.resumePartial : undefined;
    this.resumePartial = undefined;
    this.agreedStop = false;
    const every = this.cfg.checkpoint.everySteps;
    return this.theTrainer.trainEpoch(epoch, {
      // Rank 0 writes the periodic mid-epoch checkpoints (every rank holds the same state).
      afterStep:
        this.rank === 0 && every > 0
          ? async (done, total) => {
              if (done % every === 0 && done < total) {
                await saveCheckpoint(this.outDir, this.cfg, this.model, this.theTrainer, {
                  epoch: epoch - 1,
                  step: done,
                });
              }
            }
          : undefined,
      fromStep,
      partial,
      steps,
      shouldStop: () => this.agreedStop,
      onStep: (report) => {
        if (this.rank === 0) this.theRecorder.step(report);
        this.link.post({ type: 'step', report });
      },
    });
  }

  private get theRecorder(): RunRecorder {
    this.recorder ??= new RunRecorder(this.outDir, this.cfg, this.data, this.model, this.theTrainer);
    return this.recorder;
  }

  finishEpoch(args: Commands['finishEpoch']['args']): Promise<Commands['finishEpoch']['result']> {
    return this.theRecorder.finishEpoch(args.result, { everyEpoch: args.everyEpoch });
  }

  saveCheckpoint(args: Commands['saveCheckpoint']['args']): Promise<string> {
    return saveCheckpoint(this.outDir, this.cfg, this.model, this.theTrainer, args);
  }

  finishRun(args: Commands['finishRun']['args']): Promise<Commands['finishRun']['result']> {
    return this.theRecorder.finishRun(args);
  }

  digest(): string {
    return Buffer.from(paramsDigest(this.model.getParams())).toString('hex');
  }

  close(): Commands['close']['result'] {
    this.recorder?.close();
    this.recorder = undefined;
    this.model.dispose();
    return { numTensors: tf.memory().numTensors };
  }
}

async function main(port: MessagePort, init: ComputeInit): Promise<void> {
  const link = new MainLink(port);
  let session: ComputeSession | undefined;
  // Commands come after 'ready' (open() waits for it), one at a time; answers settle this thread's requests.
  port.on('message', (msg: MainMessage) => {
    if (msg.type !== 'call') {
      link.answer(msg);
      return;
    }
    const s = session;
    const run = async () => {
      if (!s) throw new Error(`compute thread: '${msg.op}' before the thread was ready`);
      return (s[msg.op] as (a: unknown) => unknown).call(s, msg.args);
    };
    run().then(
      (value) => link.post({ type: 'done', id: msg.id, value }),
      (err: unknown) => link.post({ type: 'failed', id: msg.id, error: errorInfo(err) }),
    );
  });
  const { cfg } = init;
  let model: Model | undefined;
  try {
    const backend = await selectBackend(init.compute?.backend ?? cfg.compute.backend, {
      threads: init.compute?.threads ?? cfg.compute.threads,
    });
    const data = await loadRunData(cfg);
    model = createModel(modelSpecFor(cfg, data), Rng.fromSeed(cfg.seed).split('init'));
    session = new ComputeSession(cfg, init.outDir, data, model, link);
    link.post({ type: 'ready', backend: backend.name, signature: model.signature });
  } catch (err) {
    model?.dispose();
    link.post({ type: 'setupFailed', error: errorInfo(err) });
  }
}

if (!parentPort) throw new Error('compute-entry.ts runs only as a worker thread (see compute-thread.ts)');
await main(parentPort, workerData as ComputeInit);
