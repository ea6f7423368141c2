/**
 * Training-mode batch normalisation as one differentiable op with its own gradient, for every
 * backend (built from ordinary tf ops with `tf.customGrad`, so cpu, tensorflow and wasm all run it).
 *
 * Why not `tf.moments` + `tf.batchNorm`: tfjs differentiates that composite node by node. Each
 * node's gradient lives until the whole backward pass ends (the tape disposes nothing earlier) and
 * the FusedBatchNorm gradient computes its shared terms outside any tidy, so one BatchNorm keeps
 * about ten activation-sized tensors alive and costs some fifteen passes over the activation.
 * Here the backward is the closed form
 *
 *   x̂ = (x − μ)/σ,  dβ = Σ dy,  dγ = Σ dy·x̂,  dx = (γ/σ)·(dy − dβ/m − x̂·dγ/m)
 *
 * in a tidy (about seven passes, one activation-sized result), and the forward saves only x.
 * Statistics are over every axis but the last (NHWC channels); σ² is the biased batch variance,
 * as `tf.moments` gives and PyTorch normalises with.
 */
import * as tf from '@tensorflow/tfjs';

/** Error raised for shapes `batchNormTrain` cannot normalise (names the shapes it got). */
export class BatchNormTrainError extends Error {
  override name = 'BatchNormTrainError';
}

/** The normalised output and the batch statistics it used. */
export interface BatchNormTrainResult<T extends tf.Tensor> {
  /** `γ·(x − μ)/√(σ² + ε) + β`, shaped like x. */
  readonly y: T;
  /** Batch mean per channel (not differentiated). */
  readonly mean: tf.Tensor1D;
  /** Biased batch variance per channel (not differentiated). */
  readonly variance: tf.Tensor1D;
}

/**
 * Normalises `x` over all axes but the last with batch statistics, then scales by `gamma` and
 * shifts by `beta` (both `[C]`). Gradients flow to x, gamma and beta. The returned statistics are
 * ordinary tensors of the caller's scope (tidy disposes them like any other result).
 */
export function batchNormTrain<T extends tf.Tensor>(
  x: T,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon: number,
): BatchNormTrainResult<T> {
  const c = x.shape[x.shape.length - 1];
  if (x.rank < 2 || gamma.rank !== 1 || beta.rank !== 1 || gamma.shape[0] !== c || beta.shape[0] !== c) {
    throw new BatchNormTrainError(
      `batchNormTrain: x must be rank >= 2 with C = last dim and gamma, beta [C]; got x ${x.shape}, ` +
        `gamma ${gamma.shape}, beta ${beta.shape}`,
    );
  }
  const axes = x.shape.slice(0, -1).map((_, i) => i);
  const m = x.size / c;
  // Filled by the forward; kept past its tidy so the caller can have them.
  let stats: { mean: tf.Tensor1D; variance: tf.Tensor1D } | null = null;
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    // customGrad passes the op's inputs, then the save function.
    const [xi, g, b, save] = args as [tf.Tensor, tf.Tensor1D, tf.Tensor1D, tf.GradSaveFunc];
    const mean = tf.mean(xi, axes) as tf.Tensor1D;
    const variance = tf.mean(tf.square(tf.sub(xi, mean)), axes) as tf.Tensor1D;
    const y = tf.batchNorm(xi, mean, variance, b, g, epsilon);
    save([xi, mean, variance, g]);
    stats = { mean: tf.keep(mean), variance: tf.keep(variance) };
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [xs, mu, v, gs] = saved;
          const xhat = tf.batchNorm(xs, mu as tf.Tensor1D, v as tf.Tensor1D, undefined, undefined, epsilon);
          const dbeta = tf.sum(dy, axes);
          const dgamma = tf.sum(tf.mul(dy, xhat), axes);
          const k = tf.mul(gs, tf.rsqrt(tf.add(v, epsilon)));
          // dx = k·dy + x̂·(−k·dγ/m) + (−k·dβ/m)
          const dx = tf.add(
            tf.mul(dy, k),
            tf.add(tf.mul(xhat, tf.mul(k, dgamma).div(-m)), tf.mul(k, dbeta).div(-m)),
          );
          return [dx, dgamma, dbeta];
        }),
    };
  });
  const y = op(x, gamma, beta) as T;
  const kept = stats as { mean: tf.Tensor1D; variance: tf.Tensor1D } | null;
  if (kept === null) throw new BatchNormTrainError('batchNormTrain: forward did not run');
  // Hand the statistics to the caller's scope and drop the kept originals (clone is zero-copy).
  const mean = tf.clone(kept.mean);
  const variance = tf.clone(kept.variance);
  kept.mean.dispose();
  kept.variance.dispose();
  return { y, mean, variance };
}
