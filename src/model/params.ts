/**
 * Parameter bookkeeping in two phases: a `ParamRegistry` records tensor specs (name, shape, init
 * rule) in construction order without allocating anything, so layouts and parameter counts are
 * known for any architecture (ResNet-50 included) for free; a `ParamStore` then materialises them
 * as `tf.Variable`s with values generated in JS from an `Rng`, so the initial model is identical
 * on every backend.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../core/rng.ts';
import { type LayoutEntry, ModelError } from './api.ts';

/** How a tensor's initial values are drawn. */
export type InitRule =
  | { readonly kind: 'normal'; readonly std: number }
  | { readonly kind: 'uniform'; readonly low: number; readonly high: number }
  | { readonly kind: 'const'; readonly value: number };

/** Where a tensor lives: trainable parameter or non-trainable buffer (BN running statistics). */
export type TensorRole = 'param' | 'buffer';

/** A handle to a registered tensor, resolved by a `ParamStore` at forward time. */
export interface TensorRef {
  readonly role: TensorRole;
  readonly index: number;
}

/** A registered tensor. */
export interface TensorSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly init: InitRule;
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Ordered list of parameter and buffer specs; the order is the flat-buffer order. */
export class ParamRegistry {
  private readonly params: TensorSpec[] = [];
  private readonly buffers: TensorSpec[] = [];
  private readonly names = new Set<string>();

  /** Registers a trainable parameter. */
  param(name: string, shape: readonly number[], init: InitRule): TensorRef {
    return this.add('param', name, shape, init);
  }

  /** Registers a non-trainable buffer. */
  buffer(name: string, shape: readonly number[], init: InitRule): TensorRef {
    return this.add('buffer', name, shape, init);
  }

  /** Parameter specs in order. */
  paramSpecs(): readonly TensorSpec[] {
    return this.params;
  }

  /** Buffer specs in order. */
  bufferSpecs(): readonly TensorSpec[] {
    return this.buffers;
  }

  private add(role: TensorRole, name: string, shape: readonly number[], init: InitRule): TensorRef {
    if (this.names.has(name)) throw new ModelError(`tensor name ${name} registered twice`);
    this.names.add(name);
    const list = role === 'param' ? this.params : this.buffers;
    list.push({ name, shape: [...shape], init });
    return { role, index: list.length - 1 };
  }
}

/** Flat layout of a spec list: offsets in order. */
export function layoutOf(specs: readonly TensorSpec[]): LayoutEntry[] {
  let offset = 0;
  return specs.map((s) => {
    const size = sizeOf(s.shape);
    const e = { name: s.name, shape: s.shape, offset, size };
    offset += size;
    return e;
  });
}

/** Total element count of a spec list. */
export function countOf(specs: readonly TensorSpec[]): number {
  return specs.reduce((a, s) => a + sizeOf(s.shape), 0);
}

/**
 * Initial values of one tensor. Each tensor draws from `rng.split(name)`, so a tensor's values do
 * not depend on the sizes of the tensors before it (e.g. the class count does not move the trunk).
 */
export function initialValues(spec: TensorSpec, rng: Rng): Float32Array {
  const out = new Float32Array(sizeOf(spec.shape));
  const init = spec.init;
  if (init.kind === 'const') {
    out.fill(init.value);
    return out;
  }
  const r = rng.split(spec.name);
  if (init.kind === 'normal') {
    for (let i = 0; i < out.length; i++) out[i] = r.normal() * init.std;
  } else {
    for (let i = 0; i < out.length; i++) out[i] = r.uniform(init.low, init.high);
  }
  return out;
}

/** The materialised variables of a registry. */
export class ParamStore {
  /** Trainable variables, in registry order (the flat order). */
  readonly params: readonly tf.Variable[];
  /** BN running statistics, in registry order. */
  readonly buffers: readonly tf.Variable[];
  private readonly paramLayout: LayoutEntry[];
  private readonly bufferLayout: LayoutEntry[];
  readonly numParams: number;
  readonly numBuffers: number;
  /** Running-statistic updates applied per BN (PyTorch `num_batches_tracked`), keyed by BN name. */
  readonly bnBatchesTracked = new Map<string, number>();

  constructor(registry: ParamRegistry, rng: Rng) {
    const make = (s: TensorSpec, trainable: boolean) =>
      // No name: tfjs names must be unique per process and several models may coexist. The tidy
      // frees the temporary tensor; the variable holds its own reference to the data.
      tf.tidy(() => tf.variable(tf.tensor(initialValues(s, rng), [...s.shape], 'float32'), trainable));
    const made: tf.Variable[] = [];
    try {
      for (const s of registry.paramSpecs()) made.push(make(s, true));
      const nParams = made.length;
      for (const s of registry.bufferSpecs()) made.push(make(s, false));
      this.params = made.slice(0, nParams);
      this.buffers = made.slice(nParams);
    } catch (err) {
      for (const v of made) v.dispose();
      throw err;
    }
    this.paramLayout = layoutOf(registry.paramSpecs());
    this.bufferLayout = layoutOf(registry.bufferSpecs());
    this.numParams = countOf(registry.paramSpecs());
    this.numBuffers = countOf(registry.bufferSpecs());
    for (const b of registry.bufferSpecs()) {
      if (b.name.endsWith('.running_mean'))
        this.bnBatchesTracked.set(b.name.slice(0, -'.running_mean'.length), 0);
    }
  }

  /** The variable behind a ref. */
  get(ref: TensorRef): tf.Variable {
    return ref.role === 'param' ? this.params[ref.index] : this.buffers[ref.index];
  }

  /** Set while a step reports its gradients by segment (grad-taps.ts): every parameter read goes through it. */
  tap: ((index: number, v: tf.Variable) => tf.Tensor) | null = null;

  /** A forward's read of a ref: the variable, or a parameter through the step's tap. */
  use(ref: TensorRef): tf.Tensor {
    if (ref.role === 'param' && this.tap) return this.tap(ref.index, this.params[ref.index]);
    return this.get(ref);
  }

  /** Parameter layout (flat order). */
  layout(): LayoutEntry[] {
    return this.paramLayout.map((e) => ({ ...e }));
  }

  /** Buffer layout (flat order). */
  buffersLayout(): LayoutEntry[] {
    return this.bufferLayout.map((e) => ({ ...e }));
  }

  /** All parameters, flat. */
  getParams(out?: Float32Array): Float32Array {
    return readFlat(this.params, this.paramLayout, this.numParams, out);
  }

  /** Replaces all parameters from a flat buffer (copied). */
  setParams(buf: Float32Array): void {
    writeFlat(this.params, this.paramLayout, this.numParams, buf, 'params');
  }

  /** All BN running statistics, flat. */
  getBuffers(): Float32Array {
    return readFlat(this.buffers, this.bufferLayout, this.numBuffers);
  }

  /** Replaces all BN running statistics (copied). */
  setBuffers(buf: Float32Array): void {
    writeFlat(this.buffers, this.bufferLayout, this.numBuffers, buf, 'buffers');
  }

  /** Frees every variable. */
  dispose(): void {
    for (const v of this.params) v.dispose();
    for (const v of this.buffers) v.dispose();
  }
}

function readFlat(
  vars: readonly tf.Variable[],
  layout: readonly LayoutEntry[],
  total: number,
  out?: Float32Array,
): Float32Array {
  const buf = out ?? new Float32Array(total);
  if (buf.length !== total) throw new ModelError(`output buffer length ${buf.length} must be ${total}`);
  // dataSync may return the backend's own array (cpu): copy, never hand it out.
  vars.forEach((v, i) => {
    buf.set(v.dataSync() as Float32Array, layout[i].offset);
  });
  return buf;
}

function writeFlat(
  vars: readonly tf.Variable[],
  layout: readonly LayoutEntry[],
  total: number,
  buf: Float32Array,
  what: string,
): void {
  if (!(buf instanceof Float32Array)) throw new ModelError(`${what} must be a Float32Array`);
  if (buf.length !== total) {
    throw new ModelError(`${what} length ${buf.length} does not match the model's ${total}`);
  }
  vars.forEach((v, i) => {
    const e = layout[i];
    // slice (a copy): the cpu backend keeps the array it is given by reference.
    tf.tidy(() => v.assign(tf.tensor(buf.slice(e.offset, e.offset + e.size), [...e.shape], 'float32')));
  });
}
