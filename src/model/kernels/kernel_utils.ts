/**
 * Shared plumbing for the wasm training kernels: typed access to the wasm backend, running the
 * backend's own (XNNPACK-backed) kernels from inside a kernel function without going through the
 * engine, and freeing the intermediates those calls produce.
 *
 * A kernel function receives `{inputs, backend, attrs}` and must return TensorInfos whose data
 * the backend owns. Calling another registered kernel's `kernelFunc` directly (rather than
 * `tf.engine().runKernel`) keeps the intermediates off the gradient tape and out of the engine's
 * tensor bookkeeping; every intermediate is then released with `backend.disposeData`.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/** Name of the backend these kernels are registered for. */
export const WASM = 'wasm';

/** Error raised by a wasm training kernel for an input it does not support (names op and value). */
export class WasmKernelError extends Error {
  override name = 'WasmKernelError';
}

/** Attribute values the backend kernels accept (the engine's `NamedAttrMap` values). */
type AttrMap = tf.NamedAttrMap;

/** Narrows the kernel's untyped `backend` argument; fails loudly if a kernel runs elsewhere. */
export function asWasm(backend: object, kernelName: string): BackendWasm {
  const b = backend as Partial<BackendWasm>;
  if (b.dataIdMap === undefined || b.typedArrayFromHeap === undefined || b.makeOutput === undefined) {
    throw new WasmKernelError(`${kernelName}: expected the wasm backend, got ${backend.constructor.name}`);
  }
  return backend as BackendWasm;
}

/**
 * Runs the kernel currently registered for `kernelName` on wasm and returns its single output.
 * The caller owns the result and must free it with `release` unless it is returned.
 */
export function run(
  backend: BackendWasm,
  kernelName: string,
  inputs: tf.NamedTensorInfoMap,
  attrs: AttrMap = {},
): tf.TensorInfo {
  const config = tf.getKernel(kernelName, WASM);
  if (config === undefined) {
    throw new WasmKernelError(`${kernelName}: no wasm kernel is registered (needed by a training kernel)`);
  }
  const out = config.kernelFunc({ inputs, backend, attrs });
  if (Array.isArray(out)) {
    throw new WasmKernelError(`${kernelName}: expected one output, got ${out.length}`);
  }
  return out;
}

/**
 * Stock wasm kernels replaced by this project's, by name. Filled by the registration in
 * `../wasm-backend.ts` before it unregisters a stock kernel; a replacing kernel hands the cases
 * it has no fast path for (e.g. string tensors) back to the stock kernel through `runStock`.
 */
const stockKernels = new Map<string, tf.KernelConfig>();

/**
 * The backend each recorded stock kernel was last set up for. The engine runs a kernel's
 * `setupFunc` (which binds it to one wasm module instance) only for registered kernels, so a
 * replaced stock kernel must be set up here whenever the backend instance changes (threads).
 */
const stockSetupFor = new WeakMap<tf.KernelConfig, object>();

/** Records the stock kernel a project kernel replaces (first registration wins). */
export function rememberStockKernel(config: tf.KernelConfig): void {
  if (!stockKernels.has(config.kernelName)) stockKernels.set(config.kernelName, config);
}

/** The stock wasm kernel recorded for `kernelName`, if it was replaced. */
export function stockKernel(kernelName: string): tf.KernelConfig | undefined {
  return stockKernels.get(kernelName);
}

/** Runs the stock kernel a project kernel replaced (for inputs the project kernel does not cover). */
export function runStock(
  backend: BackendWasm,
  kernelName: string,
  inputs: tf.NamedTensorInfoMap,
  attrs: AttrMap = {},
): tf.TensorInfo {
  const config = stockKernels.get(kernelName);
  if (config === undefined) {
    throw new WasmKernelError(`${kernelName}: no stock wasm kernel was recorded to fall back to`);
  }
  if (config.setupFunc !== undefined && stockSetupFor.get(config) !== backend) {
    config.setupFunc(backend);
    stockSetupFor.set(config, backend);
  }
  const out = config.kernelFunc({ inputs, backend, attrs });
  if (Array.isArray(out))
    throw new WasmKernelError(`${kernelName}: stock kernel returned ${out.length} outputs`);
  return out;
}

/** Frees intermediates produced by `run` (reshape outputs share data and only drop a reference). */
export function release(backend: BackendWasm, ...infos: readonly tf.TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}

/**
 * Builds a wasm KernelConfig from a typed kernel body. The engine hands kernels untyped maps with
 * optional entries; this is the one place they are checked (required inputs present) and narrowed
 * to the kernel's declared input names and Attrs type.
 */
export function wasmKernel<K extends string, A extends object>(
  kernelName: string,
  inputNames: readonly K[],
  body: (
    inputs: Record<K, tf.TensorInfo>,
    attrs: A,
    backend: BackendWasm,
    all: tf.NamedTensorInfoMap,
  ) => tf.TensorInfo,
): tf.KernelConfig {
  return {
    kernelName,
    backendName: WASM,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const named = {} as Record<K, tf.TensorInfo>;
      for (const name of inputNames) {
        const info = inputs[name];
        if (info === undefined) throw new WasmKernelError(`${kernelName}: input '${name}' is missing`);
        named[name] = info;
      }
      return body(named, (attrs ?? {}) as unknown as A, asWasm(backend, kernelName), inputs);
    },
  };
}

/** Shorthands over `run` for the backend kernels the training kernels compose. */
export function reshape(backend: BackendWasm, x: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  return run(backend, tf.Reshape, { x }, { shape });
}

/** Permutes axes with the backend's Transpose kernel. */
export function transpose(backend: BackendWasm, x: tf.TensorInfo, perm: number[]): tf.TensorInfo {
  return run(backend, tf.Transpose, { x }, { perm });
}

/** Zero-pads (or, with `constantValue`, constant-pads) with the backend's PadV2 kernel. */
export function pad(
  backend: BackendWasm,
  x: tf.TensorInfo,
  paddings: Array<[number, number]>,
  constantValue = 0,
): tf.TensorInfo {
  return run(backend, tf.PadV2, { x }, { paddings, constantValue });
}

/** Takes `size` elements from `begin` with the backend's Slice kernel. */
export function slice(
  backend: BackendWasm,
  x: tf.TensorInfo,
  begin: number[],
  size: number[],
): tf.TensorInfo {
  return run(backend, tf.Slice, { x }, { begin, size });
}

/**
 * Forward NHWC convolution through the backend's XNNPACK Conv2D kernel. `pad` may be explicit
 * `[[0,0],[top,bottom],[left,right],[0,0]]`; stride and dilation are not combined here.
 */
export function conv2d(
  backend: BackendWasm,
  x: tf.TensorInfo,
  filter: tf.TensorInfo,
  opts: { strides: [number, number]; dilations: [number, number]; pad: tf.Conv2DAttrs['pad'] },
): tf.TensorInfo {
  return run(
    backend,
    tf.Conv2D,
    { x, filter },
    { strides: opts.strides, dilations: opts.dilations, pad: opts.pad, dataFormat: 'NHWC' },
  );
}

/** Rejects channels-first data: the wasm Conv2D kernel these kernels build on is NHWC only. */
export function requireNhwc(kernelName: string, dataFormat: string | undefined): void {
  if (dataFormat !== undefined && dataFormat !== 'NHWC') {
    throw new WasmKernelError(
      `${kernelName}: dataFormat '${dataFormat}' is not supported on wasm, use 'NHWC'`,
    );
  }
}

/** Rejects non-float32 inputs (XNNPACK convolutions are f32 only). */
export function requireFloat32(kernelName: string, name: string, info: tf.TensorInfo): void {
  if (info.dtype !== 'float32') {
    throw new WasmKernelError(`${kernelName}: input '${name}' must be float32, got ${info.dtype}`);
  }
}
