/**
 * Temporal workers of the durable-run layer: one per rank, polling that rank's task queue
 * (`bbn-worker-<runId>-<rank>`) with the rank's activities over injected deps, and the
 * coordinator's, polling `bbn-coordinator-<runId>` with the `bbnTraining` workflow and the
 * coordinator's activities (coordinator-host.ts).
 *
 * The workflow bundle is built by webpack from `workflows.ts` (its `.ts` imports are compiled by
 * the SDK's swc loader, so this works under tsx); building takes seconds, so it is done once per
 * process and can be handed to a child process as a file (`writeWorkflowBundle`).
 */
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  bundleWorkflowCode,
  DefaultLogger,
  type NativeConnection,
  Runtime,
  Worker,
  type WorkerOptions,
  type WorkflowBundle,
  type WorkflowBundleOption,
} from '@temporalio/worker';
import { writeFileAtomic } from '../worker/atomic-file.ts';
import {
  type CoordinatorDeps,
  createActivities,
  createCoordinatorActivities,
  type TrainingDeps,
} from './activities.ts';

/**
 * Absolute path of the workflow module (what `workflowsPath` points at): always the TypeScript
 * source, also when this module runs compiled from dist/ (same depth), so the bundle and its cache
 * key below are built from the same files either way.
 */
export const WORKFLOWS_PATH = fileURLToPath(new URL('../../src/orchestration/workflows.ts', import.meta.url));

let bundle: Promise<WorkflowBundle> | undefined;

/** The workflow bundle of this process (built on first use, then reused). */
export function trainingWorkflowBundle(): Promise<WorkflowBundle> {
  bundle ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietLogger }).then(({ code }) => ({
    code,
  }));
  return bundle;
}

/**
 * The bundle from the on-disk cache, built and stored there on a miss (webpack takes ~4 s, paid
 * once per change of the workflow code instead of once per `bbn train`). The key hashes every
 * source the workflow can import (src/core, this layer's workflow modules) and the lock file
 * (the SDK's version). A cache that cannot be written only costs the rebuild.
 */
export async function cachedTrainingWorkflowBundle(cacheDir: string): Promise<WorkflowBundleOption> {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const sources = [
    ...readdirSync(join(root, 'src', 'core'))
      .filter((f) => f.endsWith('.ts'))
      .sort()
      .map((f) => join(root, 'src', 'core', f)),
    ...['workflows.ts', 'api.ts', 'messages.ts'].map((f) => join(root, 'src', 'orchestration', f)),
    join(root, 'package-lock.json'),
  ];
  const hash = createHash('sha256');
  for (const f of sources) hash.update(f).update(existsSync(f) ? readFileSync(f) : '');
  const path = join(cacheDir, 'workflow-bundles', `${hash.digest('hex').slice(0, 24)}.js`);
  if (existsSync(path)) return { codePath: path };
  const built = await trainingWorkflowBundle();
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileAtomic(path, built.code);
  } catch {
    // read-only cache: the in-memory bundle serves
  }
  return built;
}

/** Writes the bundle to `path`, for a worker in another process (`workflowBundle: { codePath }`). */
export async function writeWorkflowBundle(path: string): Promise<string> {
  writeFileSync(path, (await trainingWorkflowBundle()).code);
  return path;
}

const noop = () => {};
/** webpack prints a page of statistics at info level; keep warnings and errors. */
const quietLogger = {
  log: noop,
  trace: noop,
  debug: noop,
  info: noop,
  warn: (message: string, meta?: Record<string, unknown>) => console.warn(message, meta ?? ''),
  error: (message: string, meta?: Record<string, unknown>) => console.error(message, meta ?? ''),
};

/**
 * The SDK runtime of a CLI process: its own log kept to warnings and errors (its info lines are
 * per worker state change), and no signal handlers of its own, because the command decides what
 * Ctrl-C means (a clean stop of the run, not a worker shutdown in the middle of it). Effective
 * only before the first worker or connection of the process; later calls do nothing.
 */
export function installTemporalRuntime(): void {
  // A rank that hosts only activities (or only workflows) is the design, not a problem.
  const expected = /^No (workflows|activities) registered/;
  // $BBN_TEMPORAL_LOG (set by `bbn train` unless --verbose): the SDK's lines go to that file, not
  // into the middle of the progress bar.
  const file = process.env.BBN_TEMPORAL_LOG;
  const logger = new DefaultLogger('WARN', ({ level, message, meta }) => {
    if (expected.test(message)) return;
    const line = `temporal ${level}: ${message} ${JSON.stringify(meta ?? {})}\n`;
    try {
      if (!file) throw new Error('no log file');
      appendFileSync(file, `${new Date().toISOString()} pid ${process.pid} ${line}`);
    } catch {
      process.stderr.write(line);
    }
  });
  try {
    // Core's own (Rust) log lines are forwarded to the same logger instead of its console output.
    Runtime.install({
      logger,
      shutdownSignals: [],
      telemetryOptions: { logging: { forward: {}, filter: { core: 'WARN', other: 'ERROR' } } },
    });
  } catch {
    // already installed (by an earlier call, or a test): keep that one
  }
}

/** Options of {@link createTrainingWorker}. */
export interface TrainingWorkerOptions {
  readonly connection: NativeConnection;
  readonly namespace?: string;
  /** Usually `rankTaskQueue(runId, rank)`. */
  readonly taskQueue: string;
  /** A rank's training dependencies (its activities, on its rank queue). */
  readonly deps?: TrainingDeps;
  /** The coordinator's dependencies (its activities, on the coordinator's queue). */
  readonly coordinator?: CoordinatorDeps;
  /** Host the `bbnTraining` workflow: `true` (bundle built here) or a prebuilt bundle (code or file path). */
  readonly workflows?: boolean | WorkflowBundleOption;
  /**
   * After shutdown is requested, activities get this long to stop before the worker gives up on
   * them; without it `run()` can hang forever after a fatal error. Default 10 s.
   */
  readonly shutdownForceTime?: WorkerOptions['shutdownForceTime'];
  /** Concurrent activities; default 2 (one rank trains one epoch at a time, plus a short call). */
  readonly maxConcurrentActivityTaskExecutions?: number;
}

/**
 * A Temporal worker for the training workflow and/or activities. The caller runs it
 * (`worker.run()`) and must exit the process when `run()` rejects, so a supervisor replaces it.
 */
export async function createTrainingWorker(opts: TrainingWorkerOptions): Promise<Worker> {
  if (!opts.deps && !opts.coordinator && !opts.workflows) {
    throw new TypeError(`createTrainingWorker(${opts.taskQueue}): give deps, coordinator or workflows`);
  }
  if (opts.deps && opts.coordinator) {
    throw new TypeError(
      `createTrainingWorker(${opts.taskQueue}): a rank's and the coordinator's activities live on different queues`,
    );
  }
  const workflowBundle =
    opts.workflows === true ? await trainingWorkflowBundle() : opts.workflows ? opts.workflows : undefined;
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace ?? 'default',
    taskQueue: opts.taskQueue,
    workflowBundle,
    activities: opts.deps
      ? createActivities(opts.deps)
      : opts.coordinator
        ? createCoordinatorActivities(opts.coordinator)
        : undefined,
    shutdownForceTime: opts.shutdownForceTime ?? '10s',
    // Heartbeats reach the server every second (the default throttle is 0.8 × the heartbeat
    // timeout); the main thread is free to send them because compute runs on its own thread.
    maxHeartbeatThrottleInterval: '1s',
    maxConcurrentActivityTaskExecutions: opts.maxConcurrentActivityTaskExecutions ?? 2,
  });
}
