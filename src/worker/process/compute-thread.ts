/**
 * The main thread's handle on a rank's compute thread (compute-entry.ts): starts it, sends it
 * commands one at a time, serves its allreduce requests while it trains (one at a time, in the
 * order asked: with overlap several pieces of a step are outstanding at once), and
 * ends it on every path. A failure of the thread (a thrown error, a crash, an unexpected exit)
 * becomes a `WorkerError` with the thread's message; after `fail()` every pending and later
 * command rejects at once, so a rank aborted mid-step does not wait for the step to end.
 *
 * The thread is started from a small JavaScript bootstrap that registers tsx in the thread and then
 * imports the TypeScript entry (Node 20 cannot start a .ts thread entry through `--import tsx`).
 */
import { Worker } from 'node:worker_threads';
import type { AllreduceTag } from '../../collective/index.ts';
import { applyTensorflowEnv } from '../../model/tensorflow-env.ts';
import type { EpochMetrics, RunSummary } from '../run-dir.ts';
import type { EpochResult, StepReport } from '../trainer.ts';
import type {
  CommandName,
  Commands,
  ComputeInit,
  ErrorInfo,
  MainMessage,
  StartArgs,
  StartResult,
  ThreadMessage,
  TrainEpochArgs,
} from './compute-protocol.ts';
import { errorInfo } from './compute-protocol.ts';
import { WorkerError } from './errors.ts';

/** What the main thread does for the compute thread while it trains an epoch. */
export interface EpochHandlers {
  /**
   * Sums `wire` (the step's wire, or the piece of it at `tag.span`) across the ranks in place;
   * called once at a time. Where `carriesStopVote(wire, tag)`, its last slot is the stop vote,
   * which the handler sets first.
   */
  reduce(wire: Float32Array, tag: AllreduceTag): Promise<void>;
  /** After each step. */
  step(report: StepReport): void;
}

/** What the thread reported once its backend, data and model were up. */
export interface ComputeReady {
  /** The backend it computes on (`BackendInfo.name`). */
  readonly backend: string;
  /** The model's signature (sent to the coordinator at Join). */
  readonly signature: string;
}

type Call = { resolve(value: unknown): void; reject(err: Error): void };

/** Whether this module runs as TypeScript (tsx) or compiled to dist/ (bin/bbn.mjs picks). */
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const ENTRY = new URL(FROM_SOURCE ? './compute-entry.ts' : './compute-entry.js', import.meta.url).href;

/** JavaScript that registers tsx in the new thread (from source only), then imports the entry. */
function bootstrapSource(): string {
  if (!FROM_SOURCE) return `import(${JSON.stringify(ENTRY)});`;
  const tsx = import.meta.resolve('tsx/esm/api');
  return (
    `import(${JSON.stringify(tsx)})` +
    `.then(({ register }) => { register(); return import(${JSON.stringify(ENTRY)}); });`
  );
}

/**
 * TensorFlow reads its thread counts, log level and oneDNN switch with getenv when its addon loads.
 * A worker thread's `process.env` is a private copy that native code never sees, so `selectBackend`'s
 * settings inside the thread would be ignored: they are made here, on the main thread (which never
 * loads TensorFlow itself), before the thread starts.
 */
function prepareNativeEnv(init: ComputeInit): void {
  applyTensorflowEnv(init.compute?.threads ?? init.cfg.compute.threads);
}

/** The thread's error as this rank's error: its own WorkerErrors verbatim, others named. */
function toWorkerError(info: ErrorInfo): WorkerError {
  const cause = Object.assign(new Error(info.message), { name: info.name, stack: info.stack });
  const message =
    info.name === 'WorkerError' ? info.message : `compute thread: ${info.name}: ${info.message}`;
  return new WorkerError(message, { cause });
}

/** A started compute thread; `close()` ends it (always call it, errors included). */
export class ComputeThread {
  private nextId = 1;
  /** Commands posted and not yet answered, by id. */
  private readonly calls = new Map<number, Call>();
  /** Set while a `trainEpoch` runs: who answers the thread's requests. */
  private handlers?: EpochHandlers;
  /** The first failure; once set, every command rejects with it and every request is refused. */
  private broken?: Error;
  /** The first error a request handler of the running epoch raised: the epoch's command fails with it. */
  private relayed?: Error;
  /** The allreduce requests of the running epoch, chained: the ring takes one at a time, in order. */
  private reduces: Promise<void> = Promise.resolve();
  private exited = false;
  private closing = false;
  private readonly exitedPromise: Promise<void>;
  private onReady?: Call;

  private constructor(private readonly worker: Worker) {
    this.exitedPromise = new Promise((resolve) => {
      worker.once('exit', (code) => {
        this.exited = true;
        if (!this.closing) this.fail(new WorkerError(`compute thread exited unexpectedly (code ${code})`));
        resolve();
      });
    });
    worker.on('message', (msg: ThreadMessage) => this.receive(msg));
    worker.on('error', (err) =>
      this.fail(new WorkerError(`compute thread crashed: ${err.message}`, { cause: err })),
    );
    worker.on('messageerror', (err) =>
      this.fail(new WorkerError(`compute thread sent an unreadable message: ${err.message}`, { cause: err })),
    );
  }

  /**
   * Starts a compute thread for `init` and waits until its backend, data and model are up. On any
   * failure the thread is ended and the error thrown is a `WorkerError` naming the cause.
   */
  static async open(init: ComputeInit): Promise<{ thread: ComputeThread; ready: ComputeReady }> {
    prepareNativeEnv(init);
    const thread = new ComputeThread(new Worker(bootstrapSource(), { eval: true, workerData: init }));
    try {
      const ready = await new Promise<unknown>((resolve, reject) => {
        thread.onReady = { resolve, reject };
        if (thread.broken) reject(thread.broken);
      });
      return { thread, ready: ready as ComputeReady };
    } catch (err) {
      await thread.close(0);
      throw err;
    }
  }

  private post(msg: MainMessage, transfer: ArrayBuffer[] = []): void {
    if (!this.exited) this.worker.postMessage(msg, transfer);
  }

  private receive(msg: ThreadMessage): void {
    switch (msg.type) {
      case 'ready':
        this.onReady?.resolve({ backend: msg.backend, signature: msg.signature });
        this.onReady = undefined;
        return;
      case 'setupFailed':
        this.fail(toWorkerError(msg.error));
        return;
      case 'done':
      case 'failed': {
        const call = this.calls.get(msg.id);
        if (!call) return;
        this.calls.delete(msg.id);
        if (msg.type === 'done') call.resolve(msg.value);
        else call.reject(this.relayed ?? toWorkerError(msg.error));
        return;
      }
      case 'reduce': {
        const { wire, epoch, step, bf16Elements, span } = msg;
        this.serve(msg.id, (h) => {
          const reduced = this.reduces.then(async () => {
            // A piece after a failed one is refused with that failure, not sent to a broken ring.
            if (this.relayed) throw this.relayed;
            await h.reduce(wire, { epoch, step, bf16Elements, span });
            this.post({ type: 'reduced', id: msg.id, wire }, [wire.buffer as ArrayBuffer]);
          });
          this.reduces = reduced.catch(() => {});
          return reduced;
        });
        return;
      }
      case 'step':
        try {
          this.handlers?.step(msg.report);
        } catch (err) {
          this.fail(err as Error);
        }
        return;
    }
  }

  /** Runs a request's handler; a failure (or a broken thread) answers `refused`. */
  private serve(id: number, handle: (h: EpochHandlers) => Promise<void>): void {
    const refuse = (err: Error) => {
      this.relayed ??= err;
      this.post({ type: 'refused', id, error: errorInfo(err) });
    };
    if (this.broken) refuse(this.broken);
    else if (!this.handlers) refuse(new Error('compute thread: request outside trainEpoch'));
    else handle(this.handlers).catch((err: unknown) => refuse(this.broken ?? (err as Error)));
  }

  private call<K extends CommandName>(op: K, args: Commands[K]['args']): Promise<Commands[K]['result']> {
    if (this.broken) return Promise.reject(this.broken);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.post({ type: 'call', id, op, args } as MainMessage);
    });
  }

  /** Builds the trainer; restores the checkpoint or (rank 0) creates the run directory. */
  start(args: StartArgs): Promise<StartResult> {
    return this.call('start', args);
  }

  /** The epoch's plan as its step count and digest. */
  plan(epoch: number): Promise<{ steps: number; digest: string }> {
    return this.call('plan', { epoch });
  }

  /** SHA-256 (hex) of the parameters. */
  digest(): Promise<string> {
    return this.call('digest', null);
  }

  /** Trains one epoch, serving the thread's rows and allreduce requests with `handlers`. */
  async trainEpoch(args: TrainEpochArgs, handlers: EpochHandlers): Promise<EpochResult> {
    this.handlers = handlers;
    this.relayed = undefined;
    this.reduces = Promise.resolve();
    try {
      return await this.call('trainEpoch', args);
    } finally {
      this.handlers = undefined;
    }
  }

  /** Rank 0: evaluates, appends the metrics row and checkpoints when due. */
  finishEpoch(result: EpochResult, opts: { everyEpoch?: boolean } = {}): Promise<EpochMetrics> {
    return this.call('finishEpoch', { result, everyEpoch: opts.everyEpoch });
  }

  /** Rank 0: the checkpoint of a stopped run; resolves with its path. */
  saveCheckpoint(position: { epoch: number; step: number }): Promise<string> {
    return this.call('saveCheckpoint', position);
  }

  /** Rank 0: writes summary.json. */
  finishRun(info: { seconds: number; backend: string }): Promise<RunSummary> {
    return this.call('finishRun', info);
  }

  /** True once the thread failed (crashed, exited, or `fail` was called): only `close` is left. */
  get isBroken(): boolean {
    return this.broken !== undefined;
  }

  /** Marks the thread failed: pending and later commands reject with `err` (the first one wins). */
  fail(err: Error): void {
    if (this.broken) return;
    this.broken = err;
    this.onReady?.reject(err);
    this.onReady = undefined;
    for (const call of this.calls.values()) call.reject(err);
    this.calls.clear();
  }

  /**
   * Asks the thread to free its model and waits up to `graceMs` for it (a thread busy in a step
   * answers only after the step), then terminates it. Resolves with the number of tensors the
   * thread still held after freeing (0 unless something leaked), or undefined when it did not
   * answer. Idempotent; never rejects.
   */
  async close(graceMs = 10_000): Promise<number | undefined> {
    if (this.closing) {
      await this.exitedPromise;
      return undefined;
    }
    this.closing = true;
    let numTensors: number | undefined;
    if (!this.exited && graceMs > 0) {
      const id = this.nextId++;
      let timer: NodeJS.Timeout | undefined;
      numTensors = await new Promise<number | undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), graceMs);
        this.calls.set(id, {
          resolve: (v) => resolve((v as Commands['close']['result']).numTensors),
          reject: () => resolve(undefined),
        });
        this.post({ type: 'call', id, op: 'close', args: null });
      });
      clearTimeout(timer);
      this.calls.delete(id);
    }
    await this.worker.terminate();
    await this.exitedPromise;
    return numTensors;
  }
}
