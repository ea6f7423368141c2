/**
 * TensorFlow's own fused training kernels, called through tfjs-node's backend where tfjs has no
 * kernel of its own: train-mode `FusedBatchNormV3` with `FusedBatchNormGradV3`, and `ReluGrad`.
 *
 * Why: tfjs has no train-mode fused batch norm, so layers.ts builds one from elementwise kernels
 * (5 full-size kernels forward, 7 backward); on the TensorFlow backend those made ~40% of a
 * BBN-ResNet-32 step's kernel time (`npm run bench:step-profile`). TensorFlow's fused kernels
 * (oneDNN on CPU, cuDNN on GPU) do each direction in one. They compute the same function
 * (tested against the composite, test/model/tf-native.test.ts); other backends keep the composite.
 */
import * as tf from '@tensorflow/tfjs';

interface OpAttr {
  readonly name: string;
  readonly type: number;
  readonly value: unknown;
}

/** The parts of tfjs-node's `NodeJSKernelBackend` used here (it has no exported type for them). */
export interface NativeTf {
  readonly binding: {
    readonly TF_ATTR_FLOAT: number;
    readonly TF_ATTR_STRING: number;
    readonly TF_ATTR_BOOL: number;
    readonly TF_ATTR_TYPE: number;
    readonly TF_FLOAT: number;
  };
  executeSingleOutput(name: string, attrs: OpAttr[], inputs: tf.Tensor[]): tf.Tensor;
  executeMultipleOutputs(name: string, attrs: OpAttr[], inputs: tf.Tensor[], numOutputs: number): tf.Tensor[];
}

/** The tfjs-node backend when it is the active backend, else undefined (wasm, cpu). */
export function nativeTf(): NativeTf | undefined {
  if (tf.getBackend() !== 'tensorflow') return undefined;
  const b = tf.backend() as unknown as Partial<NativeTf>;
  return typeof b.executeMultipleOutputs === 'function' && b.binding ? (b as NativeTf) : undefined;
}

function bnAttrs(t: NativeTf, epsilon: number, training: boolean): OpAttr[] {
  const { binding: b } = t;
  return [
    { name: 'T', type: b.TF_ATTR_TYPE, value: b.TF_FLOAT },
    { name: 'U', type: b.TF_ATTR_TYPE, value: b.TF_FLOAT },
    { name: 'epsilon', type: b.TF_ATTR_FLOAT, value: epsilon },
    { name: 'data_format', type: b.TF_ATTR_STRING, value: 'NHWC' },
    { name: 'is_training', type: b.TF_ATTR_BOOL, value: training },
  ];
}

/**
 * Eval-mode BatchNorm over the last axis of NHWC `x` with the running statistics, in one fused
 * kernel (`x·scale + shift` as tfjs ops is two passes over the activations). Not differentiable:
 * eval mode never runs under a gradient tape.
 */
export function fusedBatchNormInfer(
  t: NativeTf,
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  mean: tf.Tensor1D,
  variance: tf.Tensor1D,
  epsilon: number,
): tf.Tensor4D {
  const outs = t.executeMultipleOutputs(
    'FusedBatchNormV3',
    bnAttrs(t, epsilon, false),
    [x, gamma, beta, mean, variance],
    6,
  );
  for (const extra of outs.slice(1)) extra.dispose();
  return outs[0] as tf.Tensor4D;
}

/**
 * Train-mode BatchNorm over the last axis of NHWC `x` (normalised with the biased batch variance,
 * PyTorch's semantics), with TensorFlow's fused gradient through the batch statistics. `record`
 * receives the batch mean and the unbiased batch variance (what the running buffers take).
 */
export function fusedBatchNormTrain(
  t: NativeTf,
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon: number,
  record: ((mean: tf.Tensor1D, varUnbiased: tf.Tensor1D) => void) | null,
): tf.Tensor4D {
  const attrs = bnAttrs(t, epsilon, true);
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, g, b] = args as tf.Tensor[];
    const save = args[3] as tf.GradSaveFunc;
    // Training takes no population statistics: empty mean and variance inputs.
    const none = tf.tensor1d([], 'float32');
    const [y, mean, varUnbiased, r1, r2, r3] = t.executeMultipleOutputs(
      'FusedBatchNormV3',
      attrs,
      [xi, g, b, none, none],
      6,
    );
    record?.(mean as tf.Tensor1D, varUnbiased as tf.Tensor1D);
    // The reserve spaces hold the batch statistics in the form the gradient kernel wants.
    save([xi, g, r1, r2, r3]);
    return {
      value: y as tf.Tensor4D,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sg, s1, s2, s3] = saved;
        const [dx, dgamma, dbeta, e1, e2] = t.executeMultipleOutputs(
          'FusedBatchNormGradV3',
          attrs,
          [dy, sx, sg, s1, s2, s3],
          5,
        );
        e1.dispose();
        e2.dispose();
        return [dx, dgamma, dbeta];
      },
    };
  });
  return op(x, gamma, beta) as tf.Tensor4D;
}

/** dy·[y > 0] in one kernel (`y` the ReLU's output). */
export function reluGrad(t: NativeTf, dy: tf.Tensor, y: tf.Tensor): tf.Tensor {
  return t.executeSingleOutput(
    'ReluGrad',
    [{ name: 'T', type: t.binding.TF_ATTR_TYPE, value: t.binding.TF_FLOAT }],
    [dy, y],
  );
}
