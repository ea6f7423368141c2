import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../src/core/rng.ts';
import { ModelError, type ModelSpec } from '../../src/model/api.ts';
import { createModel } from '../../src/model/factory.ts';
import { gap } from '../../src/model/layers.ts';
import { describeModel, planModel } from '../../src/model/network.ts';
import { ParamStore } from '../../src/model/params.ts';
import { forEachBackend, probeBackends } from './backends.ts';
import { randomBatch, TINY_BBN } from './fixtures.ts';

const backends = await probeBackends(['cpu', 'tensorflow']);

const R32: ModelSpec = {
  variant: 'bbn',
  backbone: 'resnet_cifar',
  depth: 32,
  baseWidth: 16,
  numClasses: 10,
  inputShape: [32, 32, 3],
  bnGammaInit: 'ones',
};
const R50: ModelSpec = { ...R32, backbone: 'resnet50', depth: 50, baseWidth: 64, inputShape: [224, 224, 3] };

it('parameter counts match §9.9: BBN-R32 538,778 (C=10) / 550,388 (C=100), BBN-R50 backbone 27,970,624', () => {
  assert.equal(describeModel(R32).numParams, 538_778);
  assert.equal(describeModel({ ...R32, numClasses: 100 }).numParams, 550_388);
  const r50 = describeModel({ ...R50, numClasses: 8142 });
  const backbone = r50.layout
    .filter((e) => !e.name.startsWith('classifier.'))
    .reduce((a, e) => a + e.size, 0);
  assert.equal(backbone, 27_970_624);
  assert.equal(r50.numParams, 61_328_398);
  // The single-branch baselines: ResNet-32 (0.46 M) and ResNet-50 without FC (23,508,032).
  assert.equal(describeModel({ ...R32, variant: 'single' }).numParams, 464_154);
  const s50 = describeModel({ ...R50, variant: 'single', numClasses: 1000 });
  assert.equal(s50.numParams - (2048 * 1000 + 1000), 23_508_032);
});

it('layout: PyTorch state_dict order, trunk then cb_block, rb_block, classifier last, contiguous', () => {
  const { layout } = describeModel(R32);
  const names = layout.map((e) => e.name);
  assert.deepEqual(names.slice(0, 6), [
    'backbone.conv1.weight',
    'backbone.bn1.weight',
    'backbone.bn1.bias',
    'backbone.layer1.0.conv1.weight',
    'backbone.layer1.0.bn1.weight',
    'backbone.layer1.0.bn1.bias',
  ]);
  assert.deepEqual(names.slice(-2), ['classifier.weight', 'classifier.bias']);
  const cb = names.indexOf('backbone.cb_block.conv1.weight');
  const rb = names.indexOf('backbone.rb_block.conv1.weight');
  assert.ok(names.indexOf('backbone.layer3.3.bn2.bias') < cb && cb < rb);
  assert.ok(!names.includes('backbone.layer3.4.conv1.weight'), 'BBN layer3 keeps num_blocks − 1 blocks');
  assert.deepEqual(layout[0].shape, [3, 3, 3, 16]);
  assert.deepEqual(layout[layout.length - 2].shape, [128, 10]);
  let off = 0;
  for (const e of layout) {
    assert.equal(e.offset, off, e.name);
    off += e.size;
  }
  const r50 = describeModel(R50).layout.map((e) => e.name);
  assert.ok(
    r50.includes('backbone.layer4.1.conv3.weight') && !r50.includes('backbone.layer4.2.conv1.weight'),
  );
  assert.ok(
    r50.includes('backbone.layer4.0.downsample.0.weight') &&
      !r50.includes('backbone.cb_block.downsample.0.weight'),
  );
});

it('init: kaiming-normal convs, U(±1/√fan_in) classifier, BN γ per bnGammaInit, deterministic per seed', () => {
  const m = createModel(R32, Rng.fromSeed(5));
  const p = m.getParams();
  const l = m.layout();
  const get = (name: string) => {
    const e = l.find((x) => x.name === name);
    assert.ok(e, name);
    return p.subarray(e.offset, e.offset + e.size);
  };
  const std = (v: Float32Array) => Math.sqrt(v.reduce((a, x) => a + x * x, 0) / v.length);
  const w = get('backbone.layer3.1.conv1.weight'); // 3·3·64 fan-in, 36,864 values
  assert.ok(Math.abs(std(w) / Math.sqrt(2 / 576) - 1) < 0.02, `conv std ${std(w)}`);
  const fc = get('classifier.weight');
  const bound = 1 / Math.sqrt(128);
  assert.ok(fc.every((v) => Math.abs(v) <= bound) && Math.max(...fc.map(Math.abs)) > 0.9 * bound);
  assert.ok(get('classifier.bias').every((v) => Math.abs(v) <= bound));
  assert.ok(get('backbone.bn1.weight').every((v) => v === 1));
  assert.ok(get('backbone.bn1.bias').every((v) => v === 0));
  const bufs = m.getBuffers();
  const bl = m.bufferLayout();
  assert.equal(bl[0].name, 'backbone.bn1.running_mean');
  assert.ok(bufs.subarray(bl[1].offset, bl[1].offset + bl[1].size).every((v) => v === 1));
  const again = createModel(R32, Rng.fromSeed(5));
  assert.deepEqual(again.getParams(), p);
  const other = createModel(R32, Rng.fromSeed(6));
  assert.notDeepEqual(other.getParams(), p);
  const uni = createModel({ ...TINY_BBN, bnGammaInit: 'uniform' }, Rng.fromSeed(5));
  const ul = uni.layout().find((e) => e.name === 'backbone.layer1.0.bn1.weight');
  assert.ok(ul);
  const g = uni.getParams().subarray(ul.offset, ul.offset + ul.size);
  assert.ok(g.every((v) => v >= 0 && v < 1) && new Set(g).size === g.length);
  for (const x of [m, again, other, uni]) x.dispose();
});

it('ResNet-50 convs use PyTorch default U(±1/√fan_in)', () => {
  const spec = { ...R50, baseWidth: 4, inputShape: [32, 32, 3] as const };
  const m = createModel(spec, Rng.fromSeed(1));
  const e = m.layout().find((x) => x.name === 'backbone.layer1.0.conv2.weight');
  assert.ok(e);
  const v = m.getParams().subarray(e.offset, e.offset + e.size);
  const b = 1 / Math.sqrt(9 * 4);
  assert.ok(v.every((x) => Math.abs(x) <= b) && Math.max(...v.map(Math.abs)) > 0.8 * b);
  m.dispose();
});

it('rejects bad specs with ModelError naming the field', () => {
  const bad: [Partial<ModelSpec>, RegExp][] = [
    [{ depth: 33 }, /depth \(33\)/],
    [{ baseWidth: 3 }, /baseWidth \(3\)/],
    [{ numClasses: 1 }, /numClasses \(1\)/],
    [{ backbone: 'resnet50', depth: 32 }, /depth \(32\) must be 50/],
    [{ inputShape: [8, 8] as unknown as [number, number, number] }, /inputShape/],
  ];
  for (const [patch, re] of bad) {
    assert.throws(
      () => describeModel({ ...TINY_BBN, ...patch }),
      (e: unknown) => e instanceof ModelError && re.test(e.message),
    );
  }
});

/** Trunk, branch, pooled and logits shapes of one eval forward of one image. */
function shapes(spec: ModelSpec) {
  const plan = planModel(spec);
  const store = new ParamStore(plan.registry, Rng.fromSeed(0));
  try {
    return tf.tidy(() => {
      const ctx = { store, training: false, stats: null };
      const [h, w, c] = spec.inputShape;
      const x = tf.zeros([1, h, w, c]) as tf.Tensor4D;
      const trunk = plan.arch.trunk.forward(ctx, x);
      const br = plan.arch.branches.map((b) => b.forward(ctx, trunk));
      const pooled = br.map(gap);
      const logits = plan.classifier.forward(store, tf.concat(pooled, 1) as tf.Tensor2D);
      return { trunk: trunk.shape, branch: br[0].shape, pooled: pooled[0].shape, logits: logits.shape };
    });
  } finally {
    store.dispose();
  }
}

forEachBackend(backends, 'shapes (§9.9)', () => {
  it('BBN-ResNet-32 on 32x32x3: trunk/branch [B,8,8,64], pooled [B,64], logits [B,C]', () => {
    assert.deepEqual(shapes(R32), {
      trunk: [1, 8, 8, 64],
      branch: [1, 8, 8, 64],
      pooled: [1, 64],
      logits: [1, 10],
    });
  });

  it('MNIST-sized 28x28x1 input: 7x7 maps at the end', () => {
    const s = shapes({ ...TINY_BBN, inputShape: [28, 28, 1], baseWidth: 4 });
    assert.deepEqual(s.trunk, [1, 7, 7, 16]);
  });

  it('BBN-ResNet-50 at 224: trunk [B,7,7,32w] (2048 at w=64), pooled 32w, mixed 64w', () => {
    // Width 4 keeps this fast on the cpu backend; widths scale linearly (32w = 2048 at w = 64).
    const s = shapes({ ...R50, baseWidth: 4 });
    assert.deepEqual(s, { trunk: [1, 7, 7, 128], branch: [1, 7, 7, 128], pooled: [1, 128], logits: [1, 10] });
  });

  it('depth 8 BBN follows the official code: layer3 keeps one strided block, cb/rb work on 4w at H/4', () => {
    // BBN_ResNet_Cifar._make_layer(block, 64, num_blocks[2] - 1 = 0, stride=2) iterates over
    // [2] + [1] * -1 == [2]: one block, 2w -> 4w with stride 2.
    const spec = { ...TINY_BBN, depth: 8, baseWidth: 4 };
    const d = describeModel(spec);
    const names = d.layout.map((e) => e.name);
    assert.deepEqual(
      names.filter((n) => n.startsWith('backbone.layer3')),
      ['conv1.weight', 'bn1.weight', 'bn1.bias', 'conv2.weight', 'bn2.weight', 'bn2.bias'].map(
        (t) => `backbone.layer3.0.${t}`,
      ),
    );
    assert.deepEqual(d.layout.find((e) => e.name === 'backbone.layer3.0.conv1.weight')?.shape, [3, 3, 8, 16]);
    assert.deepEqual(d.layout.at(-2)?.shape, [32, 3]);
    // conv1 + bn1, layer1.0, layer2.0, layer3.0, cb_block, rb_block, classifier (counted by hand).
    assert.equal(d.numParams, 3 * 3 * 3 * 4 + 8 + 304 + 896 + 3520 + 2 * 4672 + 99);
    assert.deepEqual(shapes(spec), {
      trunk: [1, 2, 2, 16],
      branch: [1, 2, 2, 16],
      pooled: [1, 16],
      logits: [1, 3],
    });
  });

  it('single-branch ResNet: one Linear(D, C) over the plain network', () => {
    const m = createModel({ ...TINY_BBN, variant: 'single' }, Rng.fromSeed(1));
    const { x } = randomBatch(TINY_BBN, 3, 's');
    assert.equal(m.features(x).length, 3 * m.featureDim);
    assert.equal(m.predict(x).length, 3 * 3);
    assert.deepEqual(m.layout().at(-2)?.shape, [m.featureDim, 3]);
    m.dispose();
  });
});
