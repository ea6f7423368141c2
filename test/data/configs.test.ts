import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadRunConfig } from '../../src/cli/config-file.ts';
import { exponentialCounts } from '../../src/core/profiles.ts';

const DIR = join(import.meta.dirname, '..', '..', 'configs');
const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml'));

describe('configs/', () => {
  it('holds the MNIST-LT, CIFAR-10/100-LT and iNat 2018 configs', () => {
    for (const f of ['mnist-lt.yaml', 'cifar10-lt.yaml', 'cifar100-lt.yaml', 'inat2018.yaml']) {
      assert.ok(files.includes(f), f);
    }
  });

  for (const f of files) {
    it(`${f} validates with the run-config schema`, () => {
      const cfg = loadRunConfig(join(DIR, f));
      assert.ok(cfg.name.length > 0);
    });
  }

  it('CIFAR configs carry the official hyper-parameters (BBN-SPEC §6)', () => {
    for (const [f, kind, root] of [
      ['cifar10-lt.yaml', 'cifar10', 'data/cifar-10-batches-bin'],
      ['cifar100-lt.yaml', 'cifar100', 'data/cifar-100-binary'],
    ] as const) {
      const c = loadRunConfig(join(DIR, f));
      assert.equal(c.dataset.kind, kind);
      assert.equal(c.dataset.root, root);
      assert.equal(c.dataset.imbalanceRatio, 50);
      assert.deepEqual([c.model.backbone, c.model.depth, c.model.baseWidth], ['resnet_cifar', 32, 16]);
      const t = c.train;
      assert.deepEqual(
        [t.epochs, t.batchSize, t.lr, t.momentum, t.nesterov, t.weightDecay],
        [200, 128, 0.1, 0.9, true, 2e-4],
      );
      assert.deepEqual(t.lrSchedule, {
        name: 'warmup_multistep',
        milestones: [120, 160],
        gamma: 0.01,
        warmupEpochs: 5,
        warmupFactor: 1 / 3,
        etaMin: 1e-4,
      });
      assert.equal(t.rebalanceSampler, 'reversed');
      assert.equal(t.alpha.schedule, 'parabolic_decay');
      // The documented switch to IR 100.
      assert.equal(loadRunConfig(join(DIR, f), ['dataset.imbalanceRatio=100']).dataset.imbalanceRatio, 100);
    }
  });

  it('iNat 2018 config: ResNet-50, 180 epochs, lr 0.05 multistep x0.1, wd 1e-4', () => {
    const c = loadRunConfig(join(DIR, 'inat2018.yaml'));
    assert.equal(c.model.backbone, 'resnet50');
    assert.equal(c.dataset.trainJson, 'jsons/iNat18_train_8142.json');
    assert.equal(c.dataset.valJson, 'jsons/iNat18_val_8142.json');
    const t = c.train;
    assert.deepEqual([t.epochs, t.batchSize, t.lr, t.weightDecay], [180, 128, 0.05, 1e-4]);
    assert.deepEqual(
      [t.lrSchedule.name, t.lrSchedule.milestones, t.lrSchedule.gamma],
      ['multistep', [120, 160], 0.1],
    );
  });

  it('MNIST-LT config: IR 100 with a small bilateral ResNet', () => {
    const c = loadRunConfig(join(DIR, 'mnist-lt.yaml'));
    assert.equal(c.dataset.kind, 'mnist');
    assert.equal(c.dataset.imbalanceRatio, 100);
    assert.equal(c.model.depth, 14);
    assert.ok(c.train.epochs <= 20);
    assert.equal(exponentialCounts(663, 10, c.dataset.imbalanceRatio).at(-1), 6);
  });
});
