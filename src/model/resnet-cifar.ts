/**
 * ResNet for small images (He et al. 2016 §4.2; BBN lib/backbone/resnet_cifar.py): depth 6n+2,
 * three stages of n BasicBlocks with widths w, 2w, 4w, option-A shortcuts, kaiming-normal convs.
 * The BBN variant builds stage 3 with n - 1 shared blocks and then the last block twice (cb_block,
 * rb_block: stride 1, identity shortcut); the single variant keeps it once, in place. As in the
 * official BBN_ResNet_Cifar, stage 3 of the BBN trunk has max(1, n - 1) blocks: at depth 8 (n = 1)
 * `_make_layer(block, 64, 0, stride=2)` computes `[2] + [1] * -1 == [2]` and still builds one
 * (strided) block, so the branches sit on 4w channels at every depth.
 */
import type * as tf from '@tensorflow/tfjs';
import { type BnGammaInit, ModelError, type ModelSpec } from './api.ts';
import {
  type Architecture,
  BatchNorm,
  Conv2d,
  type ForwardCtx,
  type Module4D,
  optionAShortcut,
  relu,
  Sequential,
} from './layers.ts';
import type { ParamRegistry } from './params.ts';

/** BasicBlock: relu(bn1(conv3x3(x, s))) → bn2(conv3x3) → + shortcut(x) → relu. */
export class BasicBlock implements Module4D {
  private readonly conv1: Conv2d;
  private readonly bn1: BatchNorm;
  private readonly conv2: Conv2d;
  private readonly bn2: BatchNorm;
  /** Channels zero-padded on each side by the option-A shortcut; null = identity. */
  private readonly shortcutPad: number | null;

  constructor(
    reg: ParamRegistry,
    name: string,
    cin: number,
    planes: number,
    stride: number,
    gamma: BnGammaInit,
  ) {
    this.conv1 = new Conv2d(reg, `${name}.conv1`, cin, planes, 3, stride, 1, 'kaiming_normal');
    this.bn1 = new BatchNorm(reg, `${name}.bn1`, planes, gamma);
    this.conv2 = new Conv2d(reg, `${name}.conv2`, planes, planes, 3, 1, 1, 'kaiming_normal');
    this.bn2 = new BatchNorm(reg, `${name}.bn2`, planes, gamma);
    if (stride !== 1 || cin !== planes) {
      const p = Math.floor(planes / 4);
      if (cin + 2 * p !== planes) {
        throw new ModelError(
          `${name}: option-A shortcut pads ${cin} channels by planes//4 = ${p} per side, which does not give ${planes}; use an even baseWidth`,
        );
      }
      this.shortcutPad = p;
    } else {
      this.shortcutPad = null;
    }
  }

  forward(ctx: ForwardCtx, x: tf.Tensor4D): tf.Tensor4D {
    const h = relu.forward(ctx, this.bn1.forward(ctx, this.conv1.forward(ctx, x)));
    const o = this.bn2.forward(ctx, this.conv2.forward(ctx, h));
    // Option A always keeps even rows/columns (resnet_cifar.py:72-84); it is only built where the
    // stride is 2 in these networks.
    const sc = this.shortcutPad === null ? x : optionAShortcut(x, this.shortcutPad);
    return relu.forward(ctx, o.add(sc));
  }
}

/** Builds the CIFAR ResNet of `spec` into `reg` (registration order = flat-buffer order). */
export function buildResnetCifar(reg: ParamRegistry, spec: ModelSpec): Architecture {
  const { depth, baseWidth: w, inputShape, bnGammaInit: g } = spec;
  if (!Number.isInteger(depth) || depth < 8 || (depth - 2) % 6 !== 0) {
    throw new ModelError(`ModelSpec.depth (${depth}) must be 6n+2 with n >= 1 for resnet_cifar`);
  }
  if (!Number.isInteger(w) || w < 2 || w % 2 !== 0) {
    throw new ModelError(`ModelSpec.baseWidth (${w}) must be an even integer >= 2 for resnet_cifar`);
  }
  const n = (depth - 2) / 6;
  const trunk: Module4D[] = [];
  trunk.push(new Conv2d(reg, 'backbone.conv1', inputShape[2], w, 3, 1, 1, 'kaiming_normal'));
  trunk.push(new BatchNorm(reg, 'backbone.bn1', w, g));
  trunk.push(relu);
  let cin = w;
  const widths = [w, 2 * w, 4 * w];
  const branches: Module4D[] = [];
  for (let stage = 0; stage < 3; stage++) {
    const planes = widths[stage];
    // BBN: the last block of stage 3 is built twice after the trunk, as cb_block and rb_block; the
    // trunk's stage 3 keeps the official block count, len([2] + [1] * (n - 2)) = max(1, n - 1).
    const blocks = stage === 2 && spec.variant === 'bbn' ? Math.max(1, n - 1) : n;
    for (let i = 0; i < blocks; i++) {
      const stride = stage > 0 && i === 0 ? 2 : 1;
      trunk.push(new BasicBlock(reg, `backbone.layer${stage + 1}.${i}`, cin, planes, stride, g));
      cin = planes;
    }
  }
  if (spec.variant === 'bbn') {
    // cb_block / rb_block = block(in_planes, in_planes, stride=1), on stage 3's 4w channels.
    branches.push(new BasicBlock(reg, 'backbone.cb_block', cin, cin, 1, g));
    branches.push(new BasicBlock(reg, 'backbone.rb_block', cin, cin, 1, g));
  } else {
    // The single network's last block stays in the trunk; its "branch" is the identity.
    branches.push({ forward: (_ctx, x) => x });
  }
  return { trunk: new Sequential(trunk), branches, featureDim: cin };
}
