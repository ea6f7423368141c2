/**
 * Makes the pure-npm WebAssembly backend (`@tensorflow/tfjs-backend-wasm` 4.22) able to train
 * convolutional networks: registers the training kernels of `./kernels` and, on request, runs the
 * backend on its threaded XNNPACK binary in Node.
 *
 * Threads in Node. The package's loader never picks the threaded binary under Node (its flag
 * `WASM_HAS_MULTITHREAD_SUPPORT` is hard-wired false there), and the threaded Emscripten module,
 * if loaded, sizes its pool as `min(threads, logicalCores / 2, 8)`, which is 1 on a 2-core machine.
 * `setupWasmBackend({threads})` therefore loads `wasm-out/tfjs-backend-wasm-threaded-simd.js`
 * itself, gives its pthread workers a real script file (the package ships the worker only as a
 * string), reports `2 × threads` logical cores while the module initialises, and unrefs the
 * worker threads so that they never keep the process alive.
 *
 * Nothing happens at import time; call `setupWasmBackend` (or `registerWasmTrainingKernels` when
 * the stock single-threaded backend is enough) once, before creating tensors on wasm.
 */
import { createHash } from 'node:crypto';
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { BackendWasm, getThreadsCount, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { rememberStockKernel, stockKernel, WASM } from './kernels/kernel_utils.ts';
import { wasmTrainingKernelConfigs } from './kernels/register_all_kernels.ts';

const require = createRequire(import.meta.url);

/** The most threads the wasm binary's pool accepts (`max_num_threads` in its backend.cc). */
export const MAX_WASM_THREADS = 8;

/** Error raised when the wasm backend cannot be set up as asked (names the option and value). */
export class WasmBackendError extends Error {
  override name = 'WasmBackendError';
}

/** Options for `setupWasmBackend`. */
export interface WasmSetupOptions {
  /** XNNPACK worker threads, 1..8; default 1 (the stock single-threaded SIMD binary). */
  readonly threads?: number;
}

/** What `setupWasmBackend` set up, for the backend selector to report. */
export interface WasmBackendInfo {
  /** Threads the XNNPACK pool actually uses. */
  readonly threads: number;
  /** Which binary runs: the stock loader's single-threaded SIMD one or the threaded one. */
  readonly binary: 'stock' | 'threaded-simd';
  /** Kernels this project registered on wasm (replacing any stock ones of the same name). */
  readonly kernels: readonly string[];
}

/** The package's own backend factory, saved before it is first replaced by the threaded one. */
let stockFactory: { factory: () => tf.KernelBackend | Promise<tf.KernelBackend>; priority: number } | null =
  null;
/** Binary and pool size behind the current `wasm` registration (the stock loader until replaced). */
let registered: { binary: WasmBackendInfo['binary']; threads: number } = { binary: 'stock', threads: 1 };

/**
 * Registers the training kernels on wasm, replacing stock kernels of the same name (saved so
 * `unregisterWasmTrainingKernels` can put them back). Idempotent; returns the kernel names.
 */
export function registerWasmTrainingKernels(): string[] {
  for (const config of wasmTrainingKernelConfigs) {
    const existing = tf.getKernel(config.kernelName, WASM);
    if (existing === config) continue;
    if (existing !== undefined) {
      rememberStockKernel(existing);
      tf.unregisterKernel(config.kernelName, WASM);
    }
    tf.registerKernel(config);
  }
  return wasmTrainingKernelConfigs.map((c) => c.kernelName);
}

/** Removes the training kernels and restores the stock ones they replaced (for A/B benchmarks). */
export function unregisterWasmTrainingKernels(): void {
  for (const config of wasmTrainingKernelConfigs) {
    if (tf.getKernel(config.kernelName, WASM) !== config) continue;
    tf.unregisterKernel(config.kernelName, WASM);
    const stock = stockKernel(config.kernelName);
    if (stock !== undefined) tf.registerKernel(stock);
  }
}

/** Whether `registerWasmTrainingKernels` is in effect. */
export function wasmTrainingKernelsRegistered(): boolean {
  return wasmTrainingKernelConfigs.every((c) => tf.getKernel(c.kernelName, WASM) === c);
}

/**
 * Selects the wasm backend with `threads` XNNPACK threads and registers the training kernels.
 * Safe to call after `tf.setBackend('wasm')` and repeatedly. Changing the thread count replaces the
 * backend instance, so it must happen before any tensor lives on wasm (else `WasmBackendError`).
 */
export async function setupWasmBackend(opts: WasmSetupOptions = {}): Promise<WasmBackendInfo> {
  const threads = opts.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_WASM_THREADS) {
    throw new WasmBackendError(
      `WasmSetupOptions.threads (${threads}) must be an integer in 1..${MAX_WASM_THREADS}`,
    );
  }
  const want: WasmBackendInfo['binary'] = threads === 1 ? 'stock' : 'threaded-simd';
  const engine = tf.engine();
  if (registered.binary !== want || registered.threads !== threads) {
    const live = engine.registry[WASM] as BackendWasm | undefined;
    if (live !== undefined && live.numDataIds() > 0) {
      throw new WasmBackendError(
        `setupWasmBackend: cannot switch wasm from ${registered.threads} to ${threads} threads while ` +
          `${live.numDataIds()} tensors live on it; call it before creating tensors`,
      );
    }
    replaceWasmFactory(want, threads);
  }
  if (tf.getBackend() !== WASM || engine.registry[WASM] === undefined) {
    const ok = await tf.setBackend(WASM);
    if (!ok)
      throw new WasmBackendError(`setupWasmBackend: tf.setBackend('wasm') failed (threads ${threads})`);
  }
  removeEmscriptenProcessHandlers();
  const actual = getThreadsCount();
  if (actual !== threads) {
    throw new WasmBackendError(`setupWasmBackend: asked for ${threads} threads, the wasm pool has ${actual}`);
  }
  const kernels = registerWasmTrainingKernels();
  return { threads: actual, binary: registered.binary, kernels };
}

/**
 * The Emscripten glue of every wasm binary adds `uncaughtException` and `unhandledRejection`
 * handlers that rethrow. Node would crash on those anyway; rethrown from inside a handler, the
 * report shows the glue's one-line, 40 kB minified source instead of the error. These exact
 * handlers are removed so errors are reported by Node as usual.
 */
function removeEmscriptenProcessHandlers(): void {
  const squash = (f: (...args: never[]) => unknown) => f.toString().replace(/\s+/g, '');
  for (const listener of process.listeners('uncaughtException')) {
    if (/^function\(ex\)\{if\(!\(exinstanceofExitStatus\)\)\{throwex;?\}\}$/.test(squash(listener))) {
      process.removeListener('uncaughtException', listener);
    }
  }
  for (const listener of process.listeners('unhandledRejection')) {
    if (/^function\(reason\)\{throwreason;?\}$/.test(squash(listener))) {
      process.removeListener('unhandledRejection', listener);
    }
  }
}

/** Re-registers the `wasm` backend factory for `binary` (dropping any live instance). */
function replaceWasmFactory(binary: WasmBackendInfo['binary'], threads: number): void {
  const engine = tf.engine();
  const entry = engine.registryFactory[WASM];
  if (entry === undefined) {
    throw new WasmBackendError("setupWasmBackend: the 'wasm' backend is not registered; import it first");
  }
  if (stockFactory === null) stockFactory = { factory: entry.factory, priority: entry.priority };
  tf.removeBackend(WASM);
  if (binary === 'stock') {
    setThreadsCount(1);
    tf.registerBackend(WASM, stockFactory.factory, stockFactory.priority);
  } else {
    tf.registerBackend(WASM, () => createThreadedBackend(threads), stockFactory.priority);
  }
  registered = { binary, threads };
}

/** The subset of the Emscripten module the backend and this loader touch. */
interface ThreadedModule {
  cwrap(name: string, ret: string | null, args: string[]): (...a: number[]) => number;
  PThread: { runningWorkers: Array<{ unref(): void }>; unusedWorkers: Array<{ unref(): void }> };
  tfjs?: Record<string, (...a: number[]) => number>;
}

type ModuleFactory = (config: Record<string, unknown>) => Promise<ThreadedModule>;

/** Loads the threaded SIMD binary with a `threads`-sized XNNPACK pool and wraps it in a backend. */
async function createThreadedBackend(threads: number): Promise<BackendWasm> {
  const mainJs = require.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js');
  const dir = dirname(mainJs);
  const factory = require(mainJs) as ModuleFactory;
  const workerJs = pthreadWorkerFile(dir);
  const os = require('node:os') as { cpus: () => unknown[] };
  const realCpus = os.cpus;
  // The module reads the core count once, while it initialises: report two per wanted thread.
  os.cpus = () => Array.from({ length: 2 * threads }, () => realCpus()[0]);
  let mod: ThreadedModule;
  try {
    mod = await factory({
      locateFile: (path: string) =>
        path.endsWith('.worker.js')
          ? workerJs
          : join(dir, path.endsWith('.wasm') ? 'tfjs-backend-wasm-threaded-simd.wasm' : path),
      mainScriptUrlOrBlob: mainJs,
    });
  } finally {
    os.cpus = realCpus;
  }
  mod.tfjs = {
    init: mod.cwrap('init', null, []),
    initWithThreadsCount: mod.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: mod.cwrap('get_threads_count', 'number', []),
    registerTensor: mod.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: mod.cwrap('dispose_data', null, ['number']),
    dispose: mod.cwrap('dispose', null, []),
  };
  setThreadsCount(threads);
  const backend = new BackendWasm(mod as unknown as ConstructorParameters<typeof BackendWasm>[0]);
  // Pool threads park in Atomics.wait between ops; they must not hold the event loop open.
  for (const w of [...mod.PThread.runningWorkers, ...mod.PThread.unusedWorkers]) w.unref();
  return backend;
}

/**
 * Writes the pthread worker script (shipped only as a string export) to a content-addressed file
 * in the temp directory, once; a Node worker_thread needs a file path, not a blob URL.
 */
function pthreadWorkerFile(dir: string): string {
  const source = (
    require(join(dir, 'tfjs-backend-wasm-threaded-simd.worker.js')) as { wasmWorkerContents: string }
  ).wasmWorkerContents;
  // The string was built for a Blob, with "\n" escapes inside JS string literals turned into real
  // newlines; escape them back, exactly as the package's own browser loader does.
  const script = source.replace(/\n/g, '\\n');
  const hash = createHash('sha256').update(script).digest('hex').slice(0, 16);
  const path = join(tmpdir(), `tfjs-wasm-pthread-${hash}.cjs`);
  if (!existsSync(path)) {
    // Write-then-rename so a concurrent process never loads a half-written script.
    const partial = `${path}.${process.pid}.tmp`;
    writeFileSync(partial, script);
    renameSync(partial, path);
  }
  return path;
}
