/**
 * Compute backend selection: decides, by actually loading each candidate, which tfjs backend this
 * process computes on, and says why.
 *
 * Candidates, best first (the order `auto` tries them in):
 *
 * | name             | package                          | tfjs backend name |
 * |------------------|----------------------------------|-------------------|
 * | `tensorflow-gpu` | `@tensorflow/tfjs-node-gpu`      | `tensorflow`      |
 * | `tensorflow`     | `@tensorflow/tfjs-node`          | `tensorflow`      |
 * | `wasm`           | `@tensorflow/tfjs-backend-wasm`  | `wasm`            |
 * | `cpu`            | `@tensorflow/tfjs` (pure JS)     | `cpu`             |
 *
 * A package that resolves but whose native addon is missing (npm installs it without its install
 * script; `scripts/setup-tfjs.sh` builds the addon) fails to load, and is recorded in `tried`,
 * never picked.
 *
 * The backend is registered in the one tfjs engine of the process (tfjs keeps it in a global), so
 * model code that does `import * as tf from '@tensorflow/tfjs'` (or `@tensorflow/tfjs-core`)
 * computes on whatever `selectBackend` chose.
 *
 * Two facts of the native libraries shape this module:
 * - TensorFlow reads `TF_NUM_INTRAOP_THREADS` / `TF_NUM_INTEROP_THREADS` once, when the addon
 *   creates its eager context on first load. `threads` therefore sets them before that load and
 *   cannot change them afterwards (a different count later throws `BackendError`; use a fresh
 *   process). The wasm backend's thread count is likewise fixed when it first initialises.
 * - Both TensorFlow packages register the backend name `tensorflow`, and two TensorFlow libraries
 *   cannot share a process; whichever loads first provides `tensorflow` for the process.
 * - TensorFlow 2.15 turns its oneDNN CPU kernels on by default only on CPUs with AVX-512 VNNI /
 *   BF16 or AMX; oneDNN is turned on here for every CPU (`TF_ENABLE_ONEDNN_OPTS=1`, unless the
 *   environment sets it). That and the thread counts are set by `applyTensorflowEnv`
 *   (tensorflow-env.ts), which a worker thread's starter must call on its own thread.
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import type { BACKENDS } from '../core/config.ts';
import { applyTensorflowEnv } from './tensorflow-env.ts';

/** What a run config may ask for (`RunConfig.backend`). */
export type BackendPreference = (typeof BACKENDS)[number];
/** A concrete candidate backend. */
export type BackendName = Exclude<BackendPreference, 'auto'>;

/** One attempt made while selecting: the candidate's name and, if it failed, why. */
export interface BackendAttempt {
  name: string;
  error?: string;
}

/** The outcome of `selectBackend`, for the CLI to log. */
export interface BackendInfo {
  /** The candidate in use (`tensorflow` also when the GPU package loaded but found no GPU). */
  name: BackendName;
  /** tfjs's own name for it, what `tf.getBackend()` returns now. */
  engine: string;
  /** The npm package that provides it. */
  package: string;
  /** One line: why this one, and what it runs on. */
  reason: string;
  /** Every candidate tried, in order, with the error of each that failed. */
  tried: BackendAttempt[];
}

/** Options of `selectBackend`. */
export interface SelectBackendOptions {
  /** Compute threads (TensorFlow intra- and inter-op; wasm where threaded); 0 or absent: the library default. */
  threads?: number;
}

/** A backend that was asked for cannot be used; the message names the package, the cause and a fix. */
export class BackendError extends Error {
  override name = 'BackendError';
  /** The CLI prints the message alone (no stack): it is the whole story for a user. */
  readonly userFacing = true;
  constructor(
    message: string,
    /** The preference that could not be satisfied. */
    readonly preference: string,
    /** What was tried before giving up. */
    readonly tried: readonly BackendAttempt[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const ORDER: readonly BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

const PACKAGES: Record<BackendName, string> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
  wasm: '@tensorflow/tfjs-backend-wasm',
  cpu: '@tensorflow/tfjs',
};

const HINTS: Record<BackendName, string> = {
  'tensorflow-gpu':
    'set it up with `bash scripts/setup-tfjs.sh --gpu` on a machine with an NVIDIA driver >= 525',
  tensorflow: 'build its native addon with `npm run setup` (scripts/setup-tfjs.sh), or use backend wasm',
  wasm: 'reinstall the npm dependencies (`npm run setup`)',
  cpu: 'reinstall the npm dependencies (`npm run setup`)',
};

const requireHere = createRequire(import.meta.url);

/** Fields of tfjs-node's NodeJSKernelBackend that we read (it has no exported type for them). */
interface NodeBackendFields {
  isGPUPackage?: boolean;
  isUsingGpuDevice?: boolean;
  binding?: { TF_Version?: string };
}

/** What a successful load found; `detail` goes into the reason. */
interface Loaded {
  name: BackendName;
  engine: string;
  package: string;
  detail: string;
}

/**
 * Thread count the TensorFlow addon was loaded with in this process (undefined: library default),
 * recorded at the first load because TensorFlow never reads it again.
 */
let tensorflowThreads: number | undefined;
/** Whether this module has loaded a TensorFlow package in this process. */
let tensorflowLoaded = false;

/** The first line of an error's message, short enough for a log line. */
function describeError(err: unknown, pkg: string): string {
  const e = err as { code?: string; message?: string };
  if (e?.code === 'MODULE_NOT_FOUND' && e.message?.includes(`'${pkg}'`)) return `${pkg} is not installed`;
  const first = String(e?.message ?? err)
    .split('\n')[0]
    .trim();
  return first.length > 300 ? `${first.slice(0, 297)}...` : first;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Runs a 2x2 matmul on the active backend: a backend that loads but cannot compute is not picked. */
function checkCompute(): void {
  const got = tf.tidy(() =>
    Array.from(tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2])).dataSync()),
  );
  if (got.join(',') !== '19,22,43,50') throw new Error(`2x2 matmul gave [${got}], want [19,22,43,50]`);
}

/** The TensorFlow backend object of this process, if a TensorFlow package registered one. */
function tensorflowBackend(): NodeBackendFields | undefined {
  if (tf.findBackendFactory('tensorflow') == null) return undefined;
  return tf.findBackend('tensorflow') as unknown as NodeBackendFields;
}

async function loadTensorflow(
  name: 'tensorflow' | 'tensorflow-gpu',
  threads: number | undefined,
): Promise<Loaded> {
  // Say "not installed" before anything else, whatever this process has loaded already.
  requireHere.resolve(PACKAGES[name]);
  const existing = tensorflowBackend();
  if (existing == null) {
    // Must precede the addon's first load: TensorFlow reads these once, when its context starts.
    // (On a worker thread this writes a private copy: the thread's starter applied them already.)
    applyTensorflowEnv(threads);
    // Loading registers the `tensorflow` backend and makes it active (tfjs-node's side effect).
    requireHere(PACKAGES[name]);
    tensorflowThreads = threads;
    tensorflowLoaded = true;
  } else if (threads !== undefined && threads !== tensorflowThreads) {
    throw new BackendError(
      `TensorFlow was already loaded in this process with ${tensorflowThreads ?? 'default'} threads; ` +
        `threads=${threads} needs a new process (TensorFlow reads its thread counts only at load)`,
      name,
    );
  }
  if (!(await tf.setBackend('tensorflow'))) throw new Error("tfjs could not initialise backend 'tensorflow'");
  checkCompute();
  const backend = tensorflowBackend() ?? {};
  const owner = backend.isGPUPackage ? PACKAGES['tensorflow-gpu'] : PACKAGES.tensorflow;
  const gpu = backend.isUsingGpuDevice === true;
  if (name === 'tensorflow-gpu' && owner !== PACKAGES['tensorflow-gpu']) {
    throw new Error(`${owner} already provides the 'tensorflow' backend in this process`);
  }
  const threadText =
    tensorflowThreads === undefined ? 'default threads' : plural(tensorflowThreads, 'thread');
  const detail =
    `TensorFlow ${backend.binding?.TF_Version ?? '?'} on ${gpu ? 'GPU' : 'CPU'}, ${threadText}` +
    (tensorflowLoaded ? '' : ' (loaded outside selectBackend)');
  if (name === 'tensorflow-gpu' && !gpu) {
    // Loaded, but TensorFlow fell back to the CPU: the GPU libraries or the driver are missing.
    return {
      name: 'tensorflow',
      engine: 'tensorflow',
      package: owner,
      detail: `${detail}: no GPU device visible`,
    };
  }
  return { name: gpu ? 'tensorflow-gpu' : 'tensorflow', engine: 'tensorflow', package: owner, detail };
}

async function loadWasm(threads: number | undefined): Promise<Loaded> {
  // Imported here, not at the top: importing the wasm package registers it above cpu. The set-up
  // loads the threaded build where asked, selects the backend and registers the training kernels
  // (stock wasm cannot train convolutions); it must run before any tensor lives on wasm.
  const { setupWasmBackend } = await import('./wasm-backend.ts');
  const info = await setupWasmBackend({ threads: threads ?? 1 });
  checkCompute();
  return {
    name: 'wasm',
    engine: 'wasm',
    package: PACKAGES.wasm,
    detail: `${plural(info.threads, 'thread')}, ${info.kernels.length} training kernels`,
  };
}

async function loadCpu(): Promise<Loaded> {
  if (!(await tf.setBackend('cpu'))) throw new Error("tfjs could not initialise backend 'cpu'");
  checkCompute();
  return { name: 'cpu', engine: 'cpu', package: PACKAGES.cpu, detail: 'pure JavaScript, one thread' };
}

function load(name: BackendName, threads: number | undefined): Promise<Loaded> {
  switch (name) {
    case 'tensorflow-gpu':
    case 'tensorflow':
      return loadTensorflow(name, threads);
    case 'wasm':
      return loadWasm(threads);
    case 'cpu':
      return loadCpu();
  }
}

function checkThreads(threads: number | undefined): number | undefined {
  if (threads === undefined || threads === 0) return undefined;
  if (!Number.isInteger(threads) || threads < 0) {
    throw new BackendError(
      `SelectBackendOptions.threads (${threads}) must be a non-negative integer`,
      'threads',
    );
  }
  return threads;
}

/**
 * Makes the chosen backend the active one of this process's tfjs engine and reports it.
 *
 * `auto` tries tensorflow-gpu, tensorflow, wasm, cpu in that order and takes the first that loads
 * and computes a 2x2 matmul correctly; a GPU package that loads without a GPU is taken as
 * `tensorflow` (TensorFlow on the CPU). Any other preference uses that backend or throws
 * `BackendError` naming its package, the cause and a fix.
 *
 * @example
 * const info = await selectBackend(config.backend, { threads: config.threads });
 * log.info(`backend ${info.name} (${info.package}): ${info.reason}`);
 */
export async function selectBackend(
  preference: BackendPreference,
  opts: SelectBackendOptions = {},
): Promise<BackendInfo> {
  const threads = checkThreads(opts.threads);
  if (preference !== 'auto' && !ORDER.includes(preference)) {
    throw new BackendError(
      `backend '${preference}' is unknown; choose one of auto, ${ORDER.join(', ')}`,
      preference,
    );
  }
  const candidates = preference === 'auto' ? ORDER : [preference];
  const tried: BackendAttempt[] = [];
  for (const name of candidates) {
    try {
      const got = await load(name, threads);
      if (preference === 'tensorflow-gpu' && got.name !== 'tensorflow-gpu') {
        // Asked for the GPU: TensorFlow quietly running on the CPU instead is not that.
        const error = `it loaded, but ${got.detail}`;
        tried.push({ name, error });
        throw new BackendError(
          `backend 'tensorflow-gpu' (${got.package}) cannot be used: ${error}. To fix: ${HINTS[name]}`,
          preference,
          tried,
        );
      }
      tried.push({ name });
      const skipped = tried.filter((t) => t.error).map((t) => `${t.name}: ${t.error}`);
      const how = preference === 'auto' ? 'first of auto order that works' : `asked for ${preference}`;
      const reason = `${how}; ${got.detail}` + (skipped.length > 0 ? `; skipped ${skipped.join('; ')}` : '');
      return { name: got.name, engine: got.engine, package: got.package, reason, tried };
    } catch (err) {
      if (err instanceof BackendError) throw err;
      const error = describeError(err, PACKAGES[name]);
      tried.push({ name, error });
      if (preference !== 'auto') {
        throw new BackendError(
          `backend '${name}' (${PACKAGES[name]}) cannot be used: ${error}. To fix: ${HINTS[name]}`,
          preference,
          tried,
          { cause: err },
        );
      }
    }
  }
  // Unreachable in practice: cpu ships with @tensorflow/tfjs.
  throw new BackendError(
    `no backend works: ${tried.map((t) => `${t.name}: ${t.error}`).join('; ')}`,
    preference,
    tried,
  );
}

/**
 * The backends that load and compute in this process, best first (for parametrising tests).
 * Leaves the active backend as it was. Loading TensorFlow here fixes its thread count (library
 * default) for the process, as `selectBackend` would.
 */
export async function availableBackends(): Promise<BackendName[]> {
  const active = tf.getBackend();
  const names: BackendName[] = [];
  for (const name of ORDER) {
    try {
      const got = await load(name, undefined);
      // A GPU package without a GPU counts as `tensorflow`, not twice.
      if (got.name === name) names.push(name);
    } catch {
      // Not available here; selectBackend reports why.
    }
  }
  if (active !== tf.getBackend()) await tf.setBackend(active);
  return names;
}
