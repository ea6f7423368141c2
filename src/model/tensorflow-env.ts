/**
 * The environment TensorFlow reads once, with getenv, when the tfjs-node addon loads: the one place
 * that says what the project sets there.
 *
 * - `TF_NUM_INTRAOP_THREADS` / `TF_NUM_INTEROP_THREADS`: the compute threads, where asked for.
 * - `TF_CPP_MIN_LOG_LEVEL=1`: TensorFlow's INFO lines (oneDNN, CPU features) are noise on every start.
 * - `TF_ENABLE_ONEDNN_OPTS=1`: TensorFlow 2.15 turns its oneDNN kernels on by itself only on CPUs
 *   with AVX-512 VNNI / BF16 or AMX; elsewhere (AVX2 machines such as this project's CI) eager
 *   convolutions run on Eigen, which costs a BBN-ResNet-32 step ~35% more CPU
 *   (docs/performance.md, "Compute step").
 *
 * The log level and oneDNN are defaults: a value already in the environment wins.
 *
 * Why a module of its own, without tfjs: it must run on the thread whose environment native code
 * sees. A worker thread's `process.env` is a private copy that getenv never reads, so a rank's
 * compute thread (which loads TensorFlow) gets these from its main thread, which applies them
 * before starting it and never loads TensorFlow itself (src/worker/process/compute-thread.ts).
 */

/** Sets TensorFlow's load-time variables in `env` (the process environment unless given). */
export function applyTensorflowEnv(threads: number | undefined, env: NodeJS.ProcessEnv = process.env): void {
  if (threads !== undefined && threads > 0) {
    env.TF_NUM_INTRAOP_THREADS = String(threads);
    env.TF_NUM_INTEROP_THREADS = String(threads);
  }
  env.TF_CPP_MIN_LOG_LEVEL ??= '1';
  env.TF_ENABLE_ONEDNN_OPTS ??= '1';
}
