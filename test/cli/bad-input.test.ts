/**
 * The bad-input catalogue: every case runs the real `bbn` CLI in-process (`runCli`) on one bad
 * input and must end with exit 2, a first line `bbn: …` that names the file, field or flag, no
 * stack trace, and every file of the good run directory it was pointed at unchanged (SHA-256 of
 * each file before and after). A few cases are spawned as a real process to prove the exit path.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { runCli } from '../../src/cli/cli.ts';
import {
  checkpointFileName,
  decodeCheckpoint,
  encodeCheckpoint,
  listCheckpoints,
} from '../../src/worker/checkpoint.ts';
import { runPaths } from '../../src/worker/run-dir.ts';
import { lockPath } from '../../src/worker/run-lock.ts';
import { cifarRecords, inatJson, writeCifar10, writeCifar100 } from '../data/fixtures.ts';
import { copyRun, digestTree, FIXTURE_RUN, tempDir, trainFixture } from '../helpers/run-fixture.ts';
import { tinyRun } from '../helpers/tiny.ts';

const ROOT = join(import.meta.dirname, '..', '..');
let good: string;
let goodDigest: Record<string, string>;
let otherRun: string;
let work: string;
let goodYaml: string;

/** What one case sets up: the argv after `bbn`, and the run directory that must stay unchanged. */
interface Setup {
  readonly args: string[];
  readonly guard?: string;
}

interface Case {
  readonly name: string;
  readonly setup: () => Setup;
  /** What the first line must say (besides `bbn: `). */
  readonly expect: RegExp;
}

/** A new directory for one case. */
const scratch = () => tempDir('bbn-bad-');

function file(name: string, content: string | Buffer): string {
  const p = join(scratch(), name);
  writeFileSync(p, content);
  return p;
}

/** A config file of the fixture run with `extra` merged in. */
const config = (extra: Record<string, unknown> = {}) =>
  file('run.yaml', stringify(tinyRun({ ...FIXTURE_RUN, ...extra })));

/** `bbn train --no-temporal` of the fixture config into a fresh directory, with overrides. */
const trainWith = (...overrides: string[]): Setup => ({
  args: ['train', '--no-temporal', '--config', goodYaml, '--out', join(scratch(), 'out'), ...overrides],
});

/** `bbn data --config` of a config with this dataset section. */
const dataWith = (dataset: Record<string, unknown>): Setup => ({
  args: ['data', '--config', file('data.yaml', stringify({ dataset }))],
});

const newestCkpt = (dir: string) => join(runPaths(dir).checkpoints, checkpointFileName(2));

/** A copy of the good run with every checkpoint rewritten by `edit` (bytes in, bytes out). */
function runWithCheckpoints(edit: (bytes: Buffer, path: string) => Buffer): string {
  const dir = copyRun(good);
  // Interrupted after its last checkpoint, before its summary: a resume has work to do (a complete
  // run is answered "already complete" without touching its checkpoints).
  rmSync(runPaths(dir).summary);
  for (const name of listCheckpoints(runPaths(dir).checkpoints)) {
    const p = join(runPaths(dir).checkpoints, name);
    writeFileSync(p, edit(readFileSync(p), p));
  }
  return dir;
}

/** Keeps the checksum valid: decode, change, encode. */
function reencode(edit: (c: ReturnType<typeof decodeCheckpoint>) => ReturnType<typeof decodeCheckpoint>) {
  return (bytes: Buffer, path: string) => encodeCheckpoint(edit(decodeCheckpoint(bytes, path)));
}

const nanWeights = reencode((c) => {
  const params = c.sections.params.slice();
  params[0] = Number.NaN;
  return { ...c, sections: { ...c.sections, params } };
});
const shortParams = reencode((c) => ({
  ...c,
  sections: { ...c.sections, params: c.sections.params.subarray(2) },
}));
const flipByte = (bytes: Buffer) => {
  const b = Buffer.from(bytes);
  b[b.length >> 1] ^= 0x5a;
  return b;
};

/** `bbn train --no-temporal --resume DIR` of a run with bad checkpoints. */
const resumeWith = (edit: (bytes: Buffer, path: string) => Buffer, ...overrides: string[]): Setup => {
  const dir = runWithCheckpoints(edit);
  return { args: ['train', '--no-temporal', '--resume', dir, ...overrides], guard: dir };
};

/** `bbn eval --checkpoint` of the good run's newest checkpoint after `edit`. */
const evalWith = (edit: (bytes: Buffer, path: string) => Buffer): Setup => {
  const p = join(scratch(), 'ckpt.bbnckpt');
  writeFileSync(p, edit(readFileSync(newestCkpt(good)), p));
  return { args: ['eval', '--checkpoint', p] };
};

/** A CIFAR-10 root with the fixture files, then `edit` applied to it. */
function cifar10Root(edit: (dir: string) => void = () => {}): string {
  const dir = scratch();
  writeCifar10(dir, 10, 10);
  edit(dir);
  return dir;
}

/** An iNat config whose train JSON holds `train` (and val JSON `val`, default the same). */
function inat(train: string, val = train): Setup {
  const dir = scratch();
  writeFileSync(join(dir, 'train.json'), train);
  writeFileSync(join(dir, 'val.json'), val);
  return dataWith({
    kind: 'inat',
    root: dir,
    trainJson: join(dir, 'train.json'),
    valJson: join(dir, 'val.json'),
  });
}

/** A copy of the good run with one of its files replaced. */
function runWithFile(name: string, content: string): string {
  const dir = copyRun(good);
  writeFileSync(join(dir, name), content);
  return dir;
}

const CASES: Case[] = [
  // Config files.
  {
    name: 'config file missing',
    setup: () => ({ args: ['train', '--config', join(work, 'nope.yaml')] }),
    expect: /cannot read config file .*nope.yaml: ENOENT/,
  },
  {
    name: 'config file not YAML',
    setup: () => ({ args: ['train', '--config', file('bad.yaml', 'train: [1, 2\n')] }),
    expect: /config file .*bad.yaml is not valid YAML/,
  },
  {
    name: 'config file empty',
    setup: () => ({ args: ['train', '--config', file('empty.yaml', '')] }),
    expect: /config file .*empty.yaml must hold a YAML mapping/,
  },
  {
    name: 'config file a list',
    setup: () => ({ args: ['train', '--config', file('list.yaml', '- a\n- b\n')] }),
    expect: /list.yaml must hold a YAML mapping/,
  },
  {
    name: 'config is a directory',
    setup: () => ({ args: ['train', '--config', scratch()] }),
    expect: /cannot read config file .*: EISDIR/,
  },
  {
    name: 'config unknown key',
    setup: () => ({ args: ['train', '--config', config({ traim: {} })] }),
    expect: /run.yaml is invalid:/,
  },
  {
    name: 'config wrong type',
    setup: () => ({ args: ['train', '--config', config({ train: { lr: 'fast' } })] }),
    expect: /run.yaml is invalid/,
  },
  {
    name: 'config no dataset',
    setup: () => ({ args: ['train', '--config', file('nodata.yaml', 'name: x\n')] }),
    expect: /nodata.yaml is invalid/,
  },
  // Overrides.
  {
    name: 'override NaN',
    setup: () => trainWith('train.lr=.nan'),
    expect: /^bbn: override train\.lr=\.nan: train\.lr/,
  },
  {
    name: 'override Infinity',
    setup: () => trainWith('train.lr=.inf'),
    expect: /^bbn: override train\.lr=\.inf: train\.lr/,
  },
  {
    name: 'override without =',
    setup: () => trainWith('train.lr'),
    expect: /override "train.lr" must look like KEY=VALUE/,
  },
  {
    name: 'override empty key segment',
    setup: () => trainWith('train..lr=1'),
    expect: /override "train..lr=1" has an empty key segment/,
  },
  {
    name: 'override forbidden key',
    setup: () => trainWith('__proto__.x=1'),
    expect: /names a forbidden key/,
  },
  {
    name: 'override into a scalar',
    setup: () => trainWith('seed.x=1'),
    expect: /override "seed.x=1": seed is not a section/,
  },
  {
    name: 'override unknown method',
    setup: () => trainWith('method=magic'),
    expect: /^bbn: override method=magic: method/,
  },
  {
    name: 'override depth not 6n+2',
    setup: () => trainWith('model.depth=9'),
    expect: /^bbn: override model\.depth=9: model\.depth/,
  },
  {
    name: 'override cifar without root',
    setup: () => trainWith('dataset.kind=cifar10'),
    expect: /is invalid/,
  },
  { name: 'override inat without json', setup: () => trainWith('dataset.kind=inat'), expect: /is invalid/ },
  {
    name: 'override milestones not increasing',
    setup: () => trainWith('train.lrSchedule.milestones=[3,2]'),
    expect: /^bbn: override train\.lrSchedule\.milestones=\[3,2\]: train\.lrSchedule\.milestones/,
  },
  {
    name: 'override fewThreshold > manyThreshold',
    setup: () => trainWith('eval.fewThreshold=500'),
    expect: /^bbn: override eval\.fewThreshold=500: eval/,
  },
  {
    name: 'override onNonFinite unknown',
    setup: () => trainWith('train.onNonFinite=maybe'),
    expect: /^bbn: override train\.onNonFinite=maybe: train\.onNonFinite/,
  },
  {
    name: 'override batch larger than the data',
    setup: () => trainWith('train.batchSize=100000'),
    expect: /train.batchSize \(100000\) is larger than the training set/,
  },
  // CIFAR binaries.
  {
    name: 'cifar root missing',
    setup: () => dataWith({ kind: 'cifar10', root: join(work, 'no-such-dir') }),
    expect: /dataset.root .*no-such-dir is not a directory/,
  },
  {
    name: 'cifar file missing',
    setup: () => dataWith({ kind: 'cifar10', root: cifar10Root((d) => rmSync(join(d, 'data_batch_3.bin'))) }),
    expect: /data_batch_3.bin .*missing/,
  },
  {
    name: 'cifar file truncated',
    setup: () =>
      dataWith({
        kind: 'cifar10',
        root: cifar10Root((d) =>
          writeFileSync(
            join(d, 'data_batch_2.bin'),
            readFileSync(join(d, 'data_batch_2.bin')).subarray(0, 5000),
          ),
        ),
      }),
    expect: /data_batch_2.bin is truncated/,
  },
  {
    name: 'cifar file empty',
    setup: () =>
      dataWith({ kind: 'cifar10', root: cifar10Root((d) => writeFileSync(join(d, 'test_batch.bin'), '')) }),
    expect: /test_batch.bin is empty/,
  },
  {
    name: 'cifar label out of range',
    setup: () =>
      dataWith({
        kind: 'cifar10',
        root: cifar10Root((d) => writeFileSync(join(d, 'data_batch_1.bin'), cifarRecords([1, 2, 11]))),
      }),
    expect: /data_batch_1.bin record #2: label 11 is outside 0..9/,
  },
  {
    name: 'cifar-100 coarse label out of range',
    setup: () =>
      dataWith({
        kind: 'cifar100',
        root: (() => {
          const d = scratch();
          writeCifar100(d, 10, 10);
          writeFileSync(
            join(d, 'train.bin'),
            cifarRecords([
              [3, 3],
              [25, 4],
            ]),
          );
          return d;
        })(),
      }),
    expect: /train.bin record #1: coarse label 25 is outside 0..19/,
  },
  {
    name: 'cifar-10 files read as cifar-100',
    setup: () => dataWith({ kind: 'cifar100', root: cifar10Root() }),
    expect: /CIFAR-100 files? .*missing/,
  },
  {
    name: 'cifar names file with wrong count',
    setup: () =>
      dataWith({
        kind: 'cifar10',
        root: cifar10Root((d) => writeFileSync(join(d, 'batches.meta.txt'), 'cat\ndog\n')),
      }),
    expect: /batches.meta.txt lists 2 class names, expected 10/,
  },
  {
    name: 'cifar random bytes',
    setup: () =>
      dataWith({
        kind: 'cifar10',
        root: cifar10Root((d) => writeFileSync(join(d, 'data_batch_4.bin'), Buffer.alloc(3073 * 2, 0xff))),
      }),
    expect: /data_batch_4.bin record #0: label 255 is outside/,
  },
  // iNat JSON.
  {
    name: 'inat json missing',
    setup: () =>
      dataWith({
        kind: 'inat',
        root: work,
        trainJson: join(work, 'none.json'),
        valJson: join(work, 'none.json'),
      }),
    expect: /cannot read annotation file .*none.json \(ENOENT\)/,
  },
  {
    name: 'inat not JSON',
    setup: () => inat('{"annotations": ['),
    expect: /(train|val)\.json is not valid JSON/,
  }, // both files hold it; either may be read first
  {
    name: 'inat top level a list',
    setup: () => inat('[]'),
    // Both files hold it; whichever the reader reaches first is named.
    expect: /(train|val)\.json is not a BBN\/iNaturalist annotation file: the top level is not an object/,
  },
  {
    name: 'inat no annotations field',
    setup: () => inat('{"num_classes": 2}'),
    expect: /field "annotations" \(an array\) is missing/,
  },
  {
    name: 'inat num_classes 1',
    setup: () => inat(inatJson([{ fpath: 'a.jpg', category_id: 0 }], 1)),
    expect: /"num_classes" must be an integer >= 2/,
  },
  { name: 'inat no images', setup: () => inat(inatJson([], 3)), expect: /field "annotations" is empty/ },
  {
    name: 'inat category out of range',
    setup: () =>
      inat(
        inatJson(
          [
            { fpath: 'a.jpg', category_id: 0 },
            { fpath: 'b.jpg', category_id: 7 },
          ],
          2,
        ),
      ),
    expect: /annotation #1: category_id 7 is not an integer in \[0, 2\)/,
  },
  {
    name: 'inat annotation without fpath',
    setup: () => inat('{"annotations": [{"category_id": 0}], "num_classes": 2}'),
    expect: /annotation #0 has no "fpath" string/,
  },
  {
    name: 'inat num_classes differ',
    setup: () =>
      inat(
        inatJson(
          [
            { fpath: 'a', category_id: 0 },
            { fpath: 'b', category_id: 1 },
          ],
          2,
        ),
        inatJson([{ fpath: 'a', category_id: 0 }], 3),
      ),
    expect: /num_classes differs: 2 in .*train.json but 3 in .*val.json/,
  },
  {
    name: 'inat class with no image',
    setup: () =>
      inat(
        inatJson(
          [
            { fpath: 'a', category_id: 0 },
            { fpath: 'b', category_id: 2 },
          ],
          3,
        ),
      ),
    expect: /class 1 of num_classes 3 has no training image/,
  },
  // Checkpoints, through bbn eval.
  {
    name: 'eval checkpoint missing',
    setup: () => ({ args: ['eval', '--checkpoint', join(work, 'none.bbnckpt')] }),
    expect: /cannot read checkpoint .*none.bbnckpt: ENOENT/,
  },
  {
    name: 'eval checkpoint truncated',
    setup: () => evalWith((b) => b.subarray(0, b.length >> 1)),
    expect: /ckpt.bbnckpt is corrupt or truncated \(checksum mismatch\)/,
  },
  {
    name: 'eval checkpoint random bytes',
    setup: () => evalWith(() => Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) & 255))),
    expect: /ckpt.bbnckpt is not a BBN checkpoint \(bad magic/,
  },
  {
    name: 'eval checkpoint all zero',
    setup: () => evalWith((b) => Buffer.alloc(b.length)),
    expect: /is not a BBN checkpoint/,
  },
  {
    name: 'eval checkpoint empty',
    setup: () => evalWith(() => Buffer.alloc(0)),
    expect: /is not a BBN checkpoint \(bad magic or too short: 0 bytes\)/,
  },
  { name: 'eval checkpoint checksum', setup: () => evalWith(flipByte), expect: /checksum mismatch/ },
  {
    name: 'eval checkpoint NaN weights',
    setup: () => evalWith(nanWeights),
    expect: /section params holds non-finite weights \(NaN at 0\): the run had diverged/,
  },
  {
    name: 'eval checkpoint wrong sections, valid checksum',
    setup: () => evalWith(shortParams),
    expect: /ckpt.bbnckpt: section params has \d+ floats, the model needs \d+/,
  },
  {
    name: 'eval checkpoint unknown header format',
    setup: () => evalWith(reencode((c) => ({ ...c, meta: { ...c.meta, epoch: 'x' as unknown as number } }))),
    expect: /has a header of an unknown format/,
  },
  {
    name: 'eval checkpoint is a directory',
    setup: () => ({ args: ['eval', '--checkpoint', scratch()] }),
    expect: /cannot read checkpoint .*: EISDIR/,
  },
  {
    name: 'eval checkpoint of another architecture',
    setup: () => ({ args: ['eval', '--checkpoint', newestCkpt(good), 'model.depth=14'] }),
    expect: /belongs to another model/,
  },
  // Checkpoints, through bbn train --resume.
  {
    name: 'resume all checkpoints truncated',
    setup: () => resumeWith((b) => b.subarray(0, 100)),
    expect: /no usable checkpoint in .*\(2 rejected\): .*checksum mismatch/,
  },
  {
    name: 'resume all checkpoints zero',
    setup: () => resumeWith((b) => Buffer.alloc(b.length)),
    expect: /no usable checkpoint .*not a BBN checkpoint/,
  },
  {
    name: 'resume all checkpoints random',
    setup: () => resumeWith((b) => Buffer.from(b.map((_, i) => (i * 31) & 255))),
    expect: /no usable checkpoint/,
  },
  {
    name: 'resume checksum flipped',
    setup: () => resumeWith(flipByte),
    expect: /no usable checkpoint .*checksum mismatch/,
  },
  {
    name: 'resume NaN weights',
    setup: () => resumeWith(nanWeights),
    expect: /no usable checkpoint .*non-finite weights/,
  },
  {
    name: 'resume wrong sections, valid checksum',
    setup: () => resumeWith(shortParams),
    expect: /no usable checkpoint .*section params has \d+ floats/,
  },
  {
    name: 'resume only foreign checkpoints',
    setup: () =>
      resumeWith((_, p) => readFileSync(join(runPaths(otherRun).checkpoints, p.split('/').pop() ?? ''))),
    expect: /no usable checkpoint .*belongs to another run/,
  },
  {
    name: 'resume with another architecture',
    setup: () => ({ args: ['train', '--no-temporal', '--resume', copyRun(good), 'model.depth=14'] }),
    expect: /model.depth \(8 → 14\) would change the run's model or data/,
  },
  {
    name: 'resume with other data',
    setup: () => ({
      args: ['train', '--no-temporal', '--resume', copyRun(good), 'dataset.imbalanceRatio=2'],
    }),
    expect: /dataset.imbalanceRatio \(8 → 2\) would change/,
  },
  // Run directories.
  {
    name: 'resume a missing directory',
    setup: () => ({ args: ['train', '--no-temporal', '--resume', join(work, 'gone')] }),
    expect: /--resume .*gone: no .*config.yaml/,
  },
  {
    name: 'resume a file',
    setup: () => ({ args: ['train', '--no-temporal', '--resume', file('f', 'x')] }),
    expect: /--resume .*: no .*config.yaml/,
  },
  {
    name: 'resume a directory without config.yaml',
    setup: () => ({ args: ['train', '--no-temporal', '--resume', scratch()] }),
    expect: /no .*config.yaml; is this a run directory made by bbn train/,
  },
  {
    name: 'resume with config.yaml not YAML',
    setup: () => {
      const d = runWithFile('config.yaml', 'a: [\n');
      return { args: ['train', '--no-temporal', '--resume', d], guard: d };
    },
    expect: /config.yaml is not valid YAML/,
  },
  {
    name: 'resume with run.json corrupt',
    setup: () => {
      const d = runWithFile('run.json', '{');
      return { args: ['train', '--no-temporal', '--resume', d], guard: d };
    },
    expect: /run.json is not JSON/,
  },
  {
    name: 'resume a run in use',
    setup: () => {
      const d = copyRun(good);
      writeFileSync(lockPath(d), JSON.stringify({ pid: process.ppid, host: hostname(), since: 'now' }));
      return { args: ['train', '--no-temporal', '--resume', d], guard: d };
    },
    expect: /run directory .* is in use by process \d+/,
  },
  {
    name: '--out on an existing run',
    setup: () => {
      const d = copyRun(good);
      return { args: ['train', '--no-temporal', '--config', goodYaml, '--out', d], guard: d };
    },
    expect:
      /already holds a run \(2 checkpoints, metrics.jsonl, summary.json\); continue it with bbn train --resume/,
  },
  {
    name: '--out under a file',
    setup: () => trainWith('--out', join(file('plain', 'x'), 'run')),
    expect: /run directory .*plain\/run: a part of the path is a file, not a directory \(ENOTDIR\)/,
  },
  {
    name: '--out is a file',
    setup: () => trainWith('--out', file('plain', 'x')),
    expect: /run directory .*plain is a file, not a directory/,
  },
  // Flags.
  {
    name: '--workers 0',
    setup: () => trainWith('--workers', '0'),
    expect: /--workers \(0\) must be an integer from 1 to 1024/,
  },
  {
    name: '--workers 1e9',
    setup: () => trainWith('--workers', '1e9'),
    expect: /--workers \(1e9\) must be an integer from 1 to 1024/,
  },
  {
    name: '--workers abc',
    setup: () => trainWith('--workers', 'abc'),
    expect: /--workers \(abc\) must be an integer/,
  },
  {
    name: '--workers 1.5',
    setup: () => trainWith('--workers', '1.5'),
    expect: /--workers \(1.5\) must be an integer/,
  },
  {
    name: '--workers over the local limit',
    setup: () => trainWith('--workers', '1000'),
    expect: /--workers \(1000\) is more rank processes than this machine runs/,
  },
  {
    name: '--no-temporal with --workers 2',
    setup: () => trainWith('--workers', '2'),
    expect: /--no-temporal trains in this process only; drop it to train with --workers 2/,
  },
  {
    name: '--coordinator-port 70000',
    setup: () => trainWith('--coordinator-port', '70000'),
    expect: /--coordinator-port \(70000\) must be an integer in 0\.\.65535/,
  },
  {
    name: 'bbn worker without --temporal',
    setup: () => ({ args: ['worker', '--run-id', 'r', '--rank', '0'] }),
    expect: /bbn worker needs --temporal HOST:PORT/,
  },
  {
    name: 'train without --config',
    setup: () => ({ args: ['train', '--no-temporal'] }),
    expect: /bbn train needs --config FILE \(or --resume DIR\)/,
  },
  // report targets.
  {
    name: 'report a missing directory',
    setup: () => ({ args: ['report', join(work, 'gone')] }),
    expect: /gone has no summary.json/,
  },
  {
    name: 'report a run without summary',
    setup: () => {
      const d = copyRun(good);
      rmSync(runPaths(d).summary);
      return { args: ['report', d], guard: d };
    },
    expect: /has no summary.json: not a finished run directory/,
  },
  {
    name: 'report an empty summary.json',
    setup: () => {
      const d = runWithFile('summary.json', '');
      return { args: ['report', d], guard: d };
    },
    expect: /summary.json is not JSON \(empty or torn\)/,
  },
  {
    name: 'report a corrupt summary.json',
    setup: () => {
      const d = runWithFile('summary.json', '{"last": {"epoch": 2,');
      return { args: ['report', d], guard: d };
    },
    expect: /summary.json is not JSON/,
  },
  {
    name: 'report a summary.json that is not a summary',
    setup: () => {
      const d = runWithFile('summary.json', '{"hello": 1}');
      return { args: ['report', d], guard: d };
    },
    expect: /summary.json is not a run summary/,
  },
  {
    name: 'report a run with no metrics rows',
    setup: () => {
      const d = runWithFile('metrics.jsonl', '');
      return { args: ['report', d], guard: d };
    },
    expect: /has no metrics.jsonl rows/,
  },
];

/**
 * Runs `bbn args…` in this process; returns the exit status and what it wrote to stderr. Only
 * stderr is captured: stdout carries the test runner's own protocol.
 */
async function bbn(args: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await runCli(['node', 'bbn', ...args]), stderr };
  } finally {
    process.stderr.write = write;
  }
}

before(async () => {
  work = scratch();
  const fixture = await trainFixture();
  good = fixture.dir;
  goodYaml = fixture.configPath;
  otherRun = (await trainFixture()).dir;
  goodDigest = digestTree(good);
});

after(() => {
  // Nothing above was allowed to touch the good run.
  assert.deepEqual(digestTree(good), goodDigest);
});

describe('bad input catalogue (exit 2, one line naming the culprit, no stack, good run untouched)', () => {
  it(`has at least 60 cases (${CASES.length})`, () => {
    assert.ok(CASES.length >= 60);
  });
  for (const c of CASES) {
    it(c.name, async () => {
      const setup = c.setup();
      const before = setup.guard ? digestTree(setup.guard) : undefined;
      const r = await bbn(setup.args);
      const first = r.stderr.split('\n').find((l) => l.startsWith('bbn: ')) ?? '';
      assert.equal(r.code, 2, `exit status of bbn ${setup.args.join(' ')}\n${r.stderr}`);
      assert.match(first, c.expect, r.stderr);
      assert.doesNotMatch(r.stderr, /^\s+at .*:\d+:\d+\)?$/m, 'no stack trace');
      if (setup.guard && before) {
        rmSync(lockPath(setup.guard), { force: true }); // a case may have planted one
        const afterDigest = digestTree(setup.guard);
        for (const [k, v] of Object.entries(before))
          if (!k.endsWith('.bbn.lock')) assert.equal(afterDigest[k], v, `${k} unchanged`);
      }
    });
  }
});

describe('bad input - end to end through bin/bbn.mjs', () => {
  const spawnBbn = (args: string[]) =>
    spawnSync(process.execPath, [join(ROOT, 'bin', 'bbn.mjs'), ...args], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
    });

  it('--workers 1e9 exits 2 with one line', () => {
    const r = spawnBbn(['train', '--config', goodYaml, '--workers', '1e9']);
    assert.equal(r.status, 2);
    assert.equal(r.stderr, 'bbn: --workers (1e9) must be an integer from 1 to 1024\n');
  });

  it('--out on an existing run exits 2 and changes nothing', () => {
    const d = copyRun(good);
    const before = digestTree(d);
    const r = spawnBbn(['train', '--config', goodYaml, '--out', d]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /^bbn: .* already holds a run/);
    assert.deepEqual(digestTree(d), before);
  });

  it('a read-only run directory: resume exits 2 naming it (run as an unprivileged user when root)', () => {
    const d = copyRun(good);
    chmodSync(join(d, '..'), 0o755); // mkdtemp made it private
    const before = digestTree(d);
    // Read-only for the child: mode 0555 on the directory, and (as root) the child runs as nobody.
    chmodSync(d, 0o555);
    chmodSync(runPaths(d).checkpoints, 0o555);
    try {
      const asRoot = process.getuid?.() === 0;
      const r = spawnSync(
        process.execPath,
        [join(ROOT, 'bin', 'bbn.mjs'), 'train', '--no-temporal', '--resume', d],
        {
          cwd: ROOT,
          encoding: 'utf8',
          timeout: 120_000,
          env: { ...process.env, HOME: '/tmp', TSX_TSCONFIG_PATH: join(ROOT, 'tsconfig.json') },
          ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
        },
      );
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /^bbn: cannot lock run directory .*: permission denied \(EACCES\)\n$/);
    } finally {
      chmodSync(d, 0o755);
      chmodSync(runPaths(d).checkpoints, 0o755);
    }
    assert.deepEqual(digestTree(d), before);
  });
});
