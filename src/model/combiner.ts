/**
 * The BBN combiner (`Combiner.bbn_mix`, BBN-SPEC §2) and the cross-entropy targets, as small
 * functions testable on given features.
 *
 * Both CE terms of BBN use the same logits z, so α·CE(z,y_u) + (1−α)·CE(z,y_r) equals one soft-target
 * CE −Σ T∘logsoftmax(z) with T[i] = α·w(y_u,i)/N_u·onehot(y_u,i) + (1−α)·w(y_r,i)/N_r·onehot(y_r,i).
 * The targets are built in JS, so class weights and the sharding normaliser cost nothing on device.
 */
import * as tf from '@tensorflow/tfjs';
import { ModelError } from './api.ts';

/** `mixed = 2·concat(α·f_u, (1−α)·f_r)` along the feature axis: `[B, 2D]`. */
export function mixFeatures(fu: tf.Tensor2D, fr: tf.Tensor2D, alpha: number): tf.Tensor2D {
  return tf.concat([tf.mul(fu, 2 * alpha), tf.mul(fr, 2 * (1 - alpha))], 1) as tf.Tensor2D;
}

/** Soft-target cross-entropy `−Σ_ik T_ik·log softmax(z)_ik` (a scalar; T carries the normalisation). */
export function softTargetCrossEntropy(z: tf.Tensor2D, targets: tf.Tensor2D): tf.Scalar {
  return tf.neg(tf.sum(tf.mul(targets, tf.logSoftmax(z)))) as tf.Scalar;
}

function checkLabels(what: string, y: ArrayLike<number>, numClasses: number): void {
  for (let i = 0; i < y.length; i++) {
    const v = y[i];
    if (!Number.isInteger(v) || v < 0 || v >= numClasses) {
      throw new ModelError(`${what}[${i}] (${v}) must be an integer class index in [0, ${numClasses})`);
    }
  }
}

function checkWeights(w: ArrayLike<number> | undefined, numClasses: number): void {
  if (!w) return;
  if (w.length !== numClasses) {
    throw new ModelError(`classWeights length (${w.length}) must equal numClasses (${numClasses})`);
  }
  for (let c = 0; c < w.length; c++) {
    if (!Number.isFinite(w[c]) || w[c] < 0)
      throw new ModelError(`classWeights[${c}] (${w[c]}) must be finite and >= 0`);
  }
}

function checkNormalizer(what: string, n: number): void {
  if (!Number.isFinite(n) || n <= 0) throw new ModelError(`${what} (${n}) must be a finite number > 0`);
}

/**
 * The CE denominator PyTorch uses for `labels`: Σ_i w_{y_i}, or the count without weights.
 * A data-parallel caller evaluates it on the GLOBAL batch and passes it as `normalizer`.
 */
export function ceNormalizer(labels: ArrayLike<number>, classWeights?: ArrayLike<number>): number {
  if (!classWeights) return labels.length;
  let s = 0;
  for (let i = 0; i < labels.length; i++) s += classWeights[labels[i]];
  return s;
}

/** How CE terms are weighted and normalised. */
export interface TargetOptions {
  readonly classWeights?: ArrayLike<number>;
  /** Denominator of the CE sum; default `ceNormalizer(labels, classWeights)` (PyTorch mean). */
  readonly normalizer?: number;
}

/** Adds `scale·w(y_i)/N` at (i, y_i) of a row-major `[B, C]` target matrix. */
function addTerm(
  t: Float32Array,
  y: ArrayLike<number>,
  numClasses: number,
  scale: number,
  opts: TargetOptions,
  what: string,
): void {
  const n = opts.normalizer ?? ceNormalizer(y, opts.classWeights);
  checkNormalizer(`${what} normalizer`, n);
  for (let i = 0; i < y.length; i++) {
    const w = opts.classWeights ? opts.classWeights[y[i]] : 1;
    t[i * numClasses + y[i]] += (scale * w) / n;
  }
}

/** Targets of plain (optionally class-weighted) CE: `T[i, y_i] = w(y_i)/N`. */
export function ceTargets(y: ArrayLike<number>, numClasses: number, opts: TargetOptions = {}): Float32Array {
  checkLabels('y', y, numClasses);
  checkWeights(opts.classWeights, numClasses);
  const t = new Float32Array(y.length * numClasses);
  addTerm(t, y, numClasses, 1, opts, 'CE');
  return t;
}

/** Targets of the BBN loss `α·CE(z,y_u) + (1−α)·CE(z,y_r)`; each term has its own normaliser. */
export function bbnTargets(
  yu: ArrayLike<number>,
  yr: ArrayLike<number>,
  alpha: number,
  numClasses: number,
  opts: {
    readonly classWeights?: ArrayLike<number>;
    readonly normalizer?: number | { readonly uniform: number; readonly reversed: number };
  } = {},
): Float32Array {
  checkAlpha(alpha);
  if (yu.length !== yr.length) {
    throw new ModelError(
      `uniform (${yu.length}) and reversed (${yr.length}) batches must have the same size`,
    );
  }
  checkLabels('yu', yu, numClasses);
  checkLabels('yr', yr, numClasses);
  checkWeights(opts.classWeights, numClasses);
  const nz = opts.normalizer;
  const nu = typeof nz === 'number' ? nz : nz?.uniform;
  const nr = typeof nz === 'number' ? nz : nz?.reversed;
  const t = new Float32Array(yu.length * numClasses);
  addTerm(t, yu, numClasses, alpha, { classWeights: opts.classWeights, normalizer: nu }, 'uniform');
  addTerm(t, yr, numClasses, 1 - alpha, { classWeights: opts.classWeights, normalizer: nr }, 'reversed');
  return t;
}

/** α must lie in [0, 1] (BBN-SPEC §9.6). */
export function checkAlpha(alpha: number): void {
  if (!(alpha >= 0 && alpha <= 1)) throw new ModelError(`alpha (${alpha}) must be in [0, 1]`);
}

/** Row-wise argmax of a row-major `[n, C]` matrix; the first maximum wins, like PyTorch. */
export function argmaxRows(logits: ArrayLike<number>, numClasses: number): Int32Array {
  const n = logits.length / numClasses;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bv = logits[i * numClasses];
    for (let c = 1; c < numClasses; c++) {
      const v = logits[i * numClasses + c];
      if (v > bv) {
        bv = v;
        best = c;
      }
    }
    out[i] = best;
  }
  return out;
}

/** Number of predictions equal to their label. */
export function countCorrect(pred: Int32Array, y: ArrayLike<number>): number {
  let c = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === y[i]) c++;
  return c;
}

/** Mean (unweighted) CE of row-major logits, computed in float64 with log-sum-exp. */
export function meanCrossEntropy(
  logits: ArrayLike<number>,
  y: ArrayLike<number>,
  numClasses: number,
): number {
  let total = 0;
  for (let i = 0; i < y.length; i++) {
    let m = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < numClasses; c++) m = Math.max(m, logits[i * numClasses + c]);
    let s = 0;
    for (let c = 0; c < numClasses; c++) s += Math.exp(logits[i * numClasses + c] - m);
    total += m + Math.log(s) - logits[i * numClasses + y[i]];
  }
  return y.length ? total / y.length : 0;
}
