/**
 * Per-class L2 norms of the classifier weight (paper Fig. 4): for BBN, of W_c (the rows acting on
 * the conventional-branch feature), W_r (the re-balancing rows) and the whole weight, plus the
 * standard deviation of each over classes (population σ, numpy's default `np.std`).
 */
import { ModelError } from './api.ts';

/** Norms per class and their spread. */
export interface NormStats {
  readonly norms: Float64Array;
  readonly mean: number;
  readonly std: number;
}

/** Classifier norms of a BBN model (`cb`, `rb` defined) or a single one (`all` only). */
export interface ClassifierNorms {
  readonly all: NormStats;
  readonly cb?: NormStats;
  readonly rb?: NormStats;
}

function stats(norms: Float64Array): NormStats {
  const n = norms.length;
  const mean = norms.reduce((a, b) => a + b, 0) / n;
  const v = norms.reduce((a, b) => a + (b - mean) * (b - mean), 0) / n;
  return { norms, mean, std: Math.sqrt(v) };
}

/** Norms over rows [r0, r1) of a row-major `[in, C]` weight, per class (column). */
function columnNorms(w: Float32Array, numClasses: number, r0: number, r1: number): Float64Array {
  const out = new Float64Array(numClasses);
  for (let r = r0; r < r1; r++) {
    for (let c = 0; c < numClasses; c++) {
      const v = w[r * numClasses + c];
      out[c] += v * v;
    }
  }
  return out.map(Math.sqrt);
}

/**
 * Norms of a classifier weight `[in, C]` (the TF.js layout of the flat buffer). With `branchDim`
 * D (BBN, in = 2D), rows 0..D−1 form W_c and rows D..2D−1 form W_r.
 */
export function classifierWeightNorms(
  weight: Float32Array,
  numClasses: number,
  branchDim?: number,
): ClassifierNorms {
  const inDim = weight.length / numClasses;
  if (!Number.isInteger(inDim) || numClasses < 1) {
    throw new ModelError(
      `classifier weight length ${weight.length} is not a multiple of numClasses ${numClasses}`,
    );
  }
  const all = stats(columnNorms(weight, numClasses, 0, inDim));
  if (branchDim === undefined) return { all };
  if (2 * branchDim !== inDim) {
    throw new ModelError(`branchDim (${branchDim}) must be half the classifier input (${inDim})`);
  }
  return {
    all,
    cb: stats(columnNorms(weight, numClasses, 0, branchDim)),
    rb: stats(columnNorms(weight, numClasses, branchDim, inDim)),
  };
}

/** Norms of a model's classifier, read from its flat parameters. */
export function classifierNorms(model: {
  readonly variant: 'bbn' | 'single';
  readonly featureDim: number;
  readonly spec: { readonly numClasses: number };
  getParams(): Float32Array;
  classifierRange(): { offset: number; length: number };
}): ClassifierNorms {
  const { offset } = model.classifierRange();
  const branches = model.variant === 'bbn' ? 2 : 1;
  const c = model.spec.numClasses;
  const w = model.getParams().subarray(offset, offset + branches * model.featureDim * c);
  return classifierWeightNorms(w, c, model.variant === 'bbn' ? model.featureDim : undefined);
}
