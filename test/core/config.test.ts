import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ALPHA_SCHEDULES,
  applyOverrides,
  ConfigError,
  LR_SCHEDULES,
  METHODS,
  parseRunConfig,
  type RunConfig,
} from '../../src/core/config.ts';

const MNIST = { dataset: { kind: 'mnist' } };

/** Runs `fn`, asserts it throws a ConfigError, and returns it. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a ConfigError');
}

describe('config - defaults follow the official code (BBN-SPEC §6)', () => {
  const c: RunConfig = parseRunConfig(MNIST);

  it('training: 200 epochs, batch 128, SGD lr 0.1, momentum 0.9, Nesterov, wd 2e-4', () => {
    assert.equal(c.train.epochs, 200);
    assert.equal(c.train.batchSize, 128);
    assert.equal(c.train.lr, 0.1);
    assert.equal(c.train.momentum, 0.9);
    assert.equal(c.train.nesterov, true);
    assert.equal(c.train.weightDecay, 2e-4);
  });

  it('lr schedule: warm-up multistep, 5 epochs from 1/3, milestones [120,160], gamma 0.01', () => {
    assert.deepEqual(c.train.lrSchedule, {
      name: 'warmup_multistep',
      milestones: [120, 160],
      gamma: 0.01,
      warmupEpochs: 5,
      warmupFactor: 1 / 3,
      etaMin: 1e-4,
    });
  });

  it('BBN: parabolic-decay alpha with the official divisor, reversed sampler, beta 0.2, separate at 120', () => {
    assert.equal(c.method, 'bbn');
    assert.deepEqual(c.train.alpha, {
      schedule: 'parabolic_decay',
      divEpoch: 'auto',
      separateEpoch: 120,
      betaShape: 0.2,
    });
    assert.equal(c.train.rebalanceSampler, 'reversed');
  });

  it('data and eval: IR 100 exponential profile, subsample seed 0, test batch 64, shot thresholds 100/20', () => {
    assert.equal(c.seed, 0);
    assert.equal(c.dataset.profile, 'exp');
    assert.equal(c.dataset.imbalanceRatio, 100);
    assert.equal(c.dataset.subsampleSeed, 0);
    assert.equal(c.eval.batchSize, 64);
    assert.equal(c.eval.manyThreshold, 100);
    assert.equal(c.eval.fewThreshold, 20);
  });

  it('model: ResNet-32 for CIFAR with base width 16', () => {
    assert.equal(c.model.backbone, 'resnet_cifar');
    assert.equal(c.model.depth, 32);
    assert.equal(c.model.baseWidth, 16);
  });

  it('lists every method and schedule name it accepts', () => {
    assert.deepEqual([...METHODS], ['bbn', 'ce', 'rw', 'rs', 'drw', 'decouple']);
    assert.ok(ALPHA_SCHEDULES.includes('parabolic_decay') && ALPHA_SCHEDULES.includes('beta'));
    assert.deepEqual([...LR_SCHEDULES], ['warmup_multistep', 'multistep', 'cosine']);
  });
});

describe('config - unknown keys', () => {
  it('rejects an unknown top-level key, naming it', () => {
    const e = configError(() => parseRunConfig({ ...MNIST, trian: { lr: 0.1 } }));
    assert.match(e.message, /trian: unknown key/);
    assert.deepEqual(e.issues, ['trian: unknown key (check the spelling)']);
  });

  it('rejects an unknown nested key with its full path, and lists every bad field', () => {
    const e = configError(() => parseRunConfig({ ...MNIST, train: { lrr: 1, alpha: { shedule: 'equal' } } }));
    assert.ok(e.issues.some((i) => i.startsWith('train.lrr: unknown key')));
    assert.ok(e.issues.some((i) => i.startsWith('train.alpha.shedule: unknown key')));
  });

  it('names the source in the message', () => {
    assert.match(
      configError(() => parseRunConfig({ x: 1 }, 'configs/foo.yaml')).message,
      /^configs\/foo\.yaml is invalid/,
    );
  });
});

describe('config - bad fields give clear errors', () => {
  const cases: [string, unknown, RegExp][] = [
    ['unknown method', { ...MNIST, method: 'focal' }, /^method: Invalid option/],
    ['negative lr', { ...MNIST, train: { lr: -0.1 } }, /^train\.lr: Too small/],
    [
      'imbalanceRatio < 1',
      { dataset: { kind: 'mnist', imbalanceRatio: 0.5 } },
      /^dataset\.imbalanceRatio: Too small/,
    ],
    [
      'bad lr schedule name',
      { ...MNIST, train: { lrSchedule: { name: 'step' } } },
      /^train\.lrSchedule\.name:/,
    ],
    [
      'bad alpha schedule name',
      { ...MNIST, train: { alpha: { schedule: 'exp' } } },
      /^train\.alpha\.schedule:/,
    ],
    [
      'cifar without root',
      { dataset: { kind: 'cifar10' } },
      /^dataset\.root: dataset\.kind cifar10 needs dataset\.root/,
    ],
    ['cifar100 without root', { dataset: { kind: 'cifar100' } }, /^dataset\.root: dataset\.kind cifar100/],
    ['inat without json', { dataset: { kind: 'inat' } }, /^dataset\.trainJson:/],
    ['synthetic without sizes', { dataset: { kind: 'synthetic' } }, /^dataset\.numClasses:/],
    ['depth not 6n+2', { ...MNIST, model: { depth: 30 } }, /^model\.depth: depth must be 6n\+2/],
    [
      'few > many',
      { ...MNIST, eval: { fewThreshold: 200 } },
      /^eval\.fewThreshold: .*\(200\) must be <= .*\(100\)/,
    ],
    [
      'unsorted milestones',
      { ...MNIST, train: { lrSchedule: { milestones: [160, 120] } } },
      /milestones \(160,120\)/,
    ],
    ['missing dataset', {}, /^dataset:/],
  ];
  for (const [name, raw, pattern] of cases) {
    it(name, () => {
      const e = configError(() => parseRunConfig(raw));
      assert.ok(
        e.issues.some((i) => pattern.test(i)),
        `issues ${JSON.stringify(e.issues)} should match ${pattern}`,
      );
    });
  }

  it('reports independent errors together', () => {
    const e = configError(() => parseRunConfig({ dataset: { kind: 'cifar10' }, train: { lr: -1 } }));
    assert.ok(e.issues.some((i) => i.startsWith('train.lr')));
    assert.ok(e.issues.some((i) => i.startsWith('dataset.root')));
  });

  it('accepts a complete cifar config', () => {
    const c = parseRunConfig({ dataset: { kind: 'cifar10', root: '/data/cifar', imbalanceRatio: 50 } });
    assert.equal(c.dataset.root, '/data/cifar');
    assert.equal(c.dataset.imbalanceRatio, 50);
  });
});

describe('config - KEY=VALUE overrides', () => {
  it('sets nested paths with YAML-typed values', () => {
    const raw = applyOverrides(MNIST, [
      'train.lr=0.05',
      'train.lrSchedule.milestones=[60, 80]',
      'train.lrSchedule.name=multistep',
      'method=ce',
      'distributed.compressBf16=true',
      'train.alpha.divEpoch=auto',
      'dataset.imbalanceRatio=10',
    ]);
    const c = parseRunConfig(raw);
    assert.equal(c.train.lr, 0.05);
    assert.deepEqual(c.train.lrSchedule.milestones, [60, 80]);
    assert.equal(c.train.lrSchedule.name, 'multistep');
    assert.equal(c.method, 'ce');
    assert.equal(c.distributed.compressBf16, true);
    assert.equal(c.train.alpha.divEpoch, 'auto');
    assert.equal(c.dataset.imbalanceRatio, 10);
    // Untouched siblings keep their defaults.
    assert.equal(c.train.lrSchedule.gamma, 0.01);
  });

  it('overrides existing values, later overrides win, and the input is not modified', () => {
    const input = { dataset: { kind: 'mnist' }, train: { lr: 0.2, epochs: 10 } };
    const raw = applyOverrides(input, ['train.lr=0.3', 'train.lr=0.4']);
    assert.deepEqual(raw.train, { lr: 0.4, epochs: 10 });
    assert.equal(input.train.lr, 0.2);
  });

  it('works on an empty config and with = inside the value', () => {
    assert.deepEqual(applyOverrides(undefined, ['dataset.root=/a=b']), { dataset: { root: '/a=b' } });
  });

  it('an override of an unknown key is caught by validation, naming the key', () => {
    const e = configError(() => parseRunConfig(applyOverrides(MNIST, ['train.lrate=0.1'])));
    assert.ok(e.issues.some((i) => i.startsWith('train.lrate: unknown key')));
  });

  it('a typed value that does not fit is a validation error', () => {
    const e = configError(() => parseRunConfig(applyOverrides(MNIST, ['train.lr=fast'])));
    assert.ok(e.issues.some((i) => i.startsWith('train.lr:')));
  });

  it('rejects malformed overrides and descending into a non-section', () => {
    assert.match(configError(() => applyOverrides(MNIST, ['train.lr'])).message, /must look like KEY=VALUE/);
    assert.match(configError(() => applyOverrides(MNIST, ['=1'])).message, /must look like KEY=VALUE/);
    assert.match(configError(() => applyOverrides(MNIST, ['train..lr=1'])).message, /empty key segment/);
    assert.match(
      configError(() => applyOverrides(MNIST, ['method=ce', 'method.x=1'])).message,
      /method is not a section/,
    );
  });
});

describe('config hardening', () => {
  it('overrides cannot reach the object prototype', () => {
    assert.throws(() => applyOverrides({}, ['__proto__.polluted=1']), /forbidden key/);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  it('parsed configs share no default arrays', () => {
    const a = parseRunConfig({ dataset: { kind: 'mnist' } });
    a.train.lrSchedule.milestones.push(999);
    assert.deepEqual(parseRunConfig({ dataset: { kind: 'mnist' } }).train.lrSchedule.milestones, [120, 160]);
  });

  it('an enum error quotes the bad value', () => {
    assert.throws(
      () => parseRunConfig({ method: 'focal', dataset: { kind: 'mnist' } }),
      /method: .*\(got "focal"\)/,
    );
  });
});
