/**
 * ResNet-50 (BBN lib/backbone/resnet.py): bottleneck v1.5 (the stride on the 3x3 conv), projection
 * shortcut conv1x1(stride s) + BN, stem conv7x7/s2/p3 + BN + ReLU + maxpool 3/s2/p1, PyTorch
 * default init U(±1/√fan_in) for every conv. The BBN variant has 2 shared blocks in layer4 and
 * cb_block = rb_block = Bottleneck(4·8w → 8w → 4·8w, s1) (2048→512→2048 at w = 64).
 */
import * as tf from '@tensorflow/tfjs';
import { type BnGammaInit, ModelError, type ModelSpec } from './api.ts';
import {
  type Architecture,
  BatchNorm,
  Conv2d,
  type ForwardCtx,
  type Module4D,
  relu,
  reluOp,
  Sequential,
} from './layers.ts';
import type { ParamRegistry } from './params.ts';

const EXPANSION = 4;
/** Blocks per stage of ResNet-50. */
const BLOCKS = [3, 4, 6, 3] as const;

/** Bottleneck: 1x1 → BN → ReLU → 3x3(stride) → BN → ReLU → 1x1(×4) → BN, + shortcut, ReLU. */
export class Bottleneck implements Module4D {
  private readonly conv1: Conv2d;
  private readonly bn1: BatchNorm;
  private readonly conv2: Conv2d;
  private readonly bn2: BatchNorm;
  private readonly conv3: Conv2d;
  private readonly bn3: BatchNorm;
  private readonly down: { conv: Conv2d; bn: BatchNorm } | null;

  constructor(reg: ParamRegistry, name: string, cin: number, planes: number, stride: number, g: BnGammaInit) {
    const out = planes * EXPANSION;
    this.conv1 = new Conv2d(reg, `${name}.conv1`, cin, planes, 1, 1, 0, 'torch_default');
    this.bn1 = new BatchNorm(reg, `${name}.bn1`, planes, g);
    this.conv2 = new Conv2d(reg, `${name}.conv2`, planes, planes, 3, stride, 1, 'torch_default');
    this.bn2 = new BatchNorm(reg, `${name}.bn2`, planes, g);
    this.conv3 = new Conv2d(reg, `${name}.conv3`, planes, out, 1, 1, 0, 'torch_default');
    this.bn3 = new BatchNorm(reg, `${name}.bn3`, out, g);
    this.down =
      stride !== 1 || cin !== out
        ? {
            conv: new Conv2d(reg, `${name}.downsample.0`, cin, out, 1, stride, 0, 'torch_default'),
            bn: new BatchNorm(reg, `${name}.downsample.1`, out, g),
          }
        : null;
  }

  forward(ctx: ForwardCtx, x: tf.Tensor4D): tf.Tensor4D {
    let h = reluOp(this.bn1.forward(ctx, this.conv1.forward(ctx, x)));
    h = reluOp(this.bn2.forward(ctx, this.conv2.forward(ctx, h)));
    h = this.bn3.forward(ctx, this.conv3.forward(ctx, h));
    const residual = this.down ? this.down.bn.forward(ctx, this.down.conv.forward(ctx, x)) : x;
    return reluOp(tf.add(h, residual));
  }
}

/** MaxPool 3/s2/p1 after a ReLU: zero padding equals PyTorch's −inf padding there (BBN-SPEC §8.10). */
const maxPoolAfterRelu: Module4D = {
  forward: (_ctx, x) =>
    tf.maxPool(
      tf.pad(x, [
        [0, 0],
        [1, 1],
        [1, 1],
        [0, 0],
      ]),
      3,
      2,
      'valid',
    ),
};

/** Builds ResNet-50 (BBN or single) into `reg`; `baseWidth` 64 is the standard network. */
export function buildResnet50(reg: ParamRegistry, spec: ModelSpec): Architecture {
  const { baseWidth: w, bnGammaInit: g, inputShape } = spec;
  if (spec.depth !== 50) throw new ModelError(`ModelSpec.depth (${spec.depth}) must be 50 for resnet50`);
  if (!Number.isInteger(w) || w < 1) {
    throw new ModelError(`ModelSpec.baseWidth (${w}) must be a positive integer for resnet50`);
  }
  const trunk: Module4D[] = [
    new Conv2d(reg, 'backbone.conv1', inputShape[2], w, 7, 2, 3, 'torch_default'),
    new BatchNorm(reg, 'backbone.bn1', w, g),
    relu,
    maxPoolAfterRelu,
  ];
  let cin = w;
  for (let stage = 0; stage < 4; stage++) {
    const planes = w * 2 ** stage;
    // layer4 has stride 2 (last_layer_stride); BBN keeps num_blocks − 1 shared blocks there.
    const n = stage === 3 && spec.variant === 'bbn' ? BLOCKS[3] - 1 : BLOCKS[stage];
    for (let i = 0; i < n; i++) {
      const stride = stage > 0 && i === 0 ? 2 : 1;
      trunk.push(new Bottleneck(reg, `backbone.layer${stage + 1}.${i}`, cin, planes, stride, g));
      cin = planes * EXPANSION;
    }
  }
  const branches: Module4D[] =
    spec.variant === 'bbn'
      ? [
          new Bottleneck(reg, 'backbone.cb_block', cin, cin / EXPANSION, 1, g),
          new Bottleneck(reg, 'backbone.rb_block', cin, cin / EXPANSION, 1, g),
        ]
      : [{ forward: (_ctx, x) => x }];
  return { trunk: new Sequential(trunk), branches, featureDim: cin };
}
