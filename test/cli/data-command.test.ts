import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { exponentialCounts } from '../../src/core/profiles.ts';
import { classProbabilities } from '../../src/core/samplers.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'bbn.mjs');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `bbn …` from the repository root. */
function bbn(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'bbn-data-cli-'));
const synthetic = join(dir, 'synthetic.yaml');
writeFileSync(
  synthetic,
  [
    'name: tiny',
    'dataset:',
    '  kind: synthetic',
    '  numClasses: 6',
    '  perClass: 50',
    '  testPerClass: 4',
    '  imageSize: 8',
    '  imbalanceRatio: 10',
    'eval:',
    '  manyThreshold: 30',
    '  fewThreshold: 10',
    '',
  ].join('\n'),
);
const missingRoot = join(dir, 'cifar.yaml');
writeFileSync(missingRoot, `dataset:\n  kind: cifar10\n  root: ${join(dir, 'no-such-dir')}\n`);

// The processes start at once (each pays the tsx start-up); the tests await their results.
const runs = {
  synthTable: bbn('data', '--config', synthetic),
  synthJson: bbn('data', '--config', synthetic, '--json', 'dataset.imbalanceRatio=5'),
  mnistJson: bbn('data', '--config', 'configs/mnist-lt.yaml', '--json'),
  mnistTable: bbn('data', '--config', 'configs/mnist-lt.yaml'),
  badPath: bbn('data', '--config', join(dir, 'absent.yaml')),
  noCifar: bbn('data', '--config', missingRoot),
};

after(() => rmSync(dir, { recursive: true, force: true }));

/** The value after a `label` at the start of a report line. */
function field(out: string, label: string): string {
  const line = out.split('\n').find((l) => l.startsWith(label));
  assert.ok(line, `no "${label}" line in:\n${out}`);
  return line.slice(label.length).trim();
}

/** Table rows (lines starting with a rank number) as whitespace-split cells. */
function rows(out: string): string[][] {
  return out
    .split('\n')
    .filter((l) => /^\s*\d+\s+\d+\s/.test(l))
    .map((l) => l.trim().split(/\s+/));
}

describe('bbn data', () => {
  it('prints sizes, head-to-tail counts, imbalance, shot split and sampler probabilities (synthetic)', async () => {
    const r = await runs.synthTable;
    assert.equal(r.code, 0, r.stderr);
    const counts = exponentialCounts(50, 6, 10); // 50, 31, 19, 12, 7, 5
    assert.equal(field(r.stdout, 'classes'), '6');
    assert.equal(field(r.stdout, 'train images'), String(counts.reduce((a, b) => a + b)));
    assert.equal(field(r.stdout, 'test images'), '24');
    assert.match(field(r.stdout, 'imbalance ratio'), /^10\.00 \(head 50 \/ tail 5\)/);
    assert.match(field(r.stdout, 'shot groups'), /many \(> 30\): 2 classes, medium: 2, few \(< 10\): 2/);
    const table = rows(r.stdout);
    assert.equal(table.length, 6);
    const reversed = classProbabilities('reversed', counts);
    table.forEach((cells, i) => {
      // rank, class, name, train, share, shot, test, P reversed, P balanced
      assert.equal(cells[0], String(i + 1));
      assert.equal(cells[1], String(i));
      assert.equal(cells[3], String(counts[i]));
      assert.equal(cells[6], '4');
      assert.equal(cells[7], reversed[i].toFixed(6));
      assert.equal(cells[8], (1 / 6).toFixed(6));
    });
  });

  it('--json gives the same numbers, after KEY=VALUE overrides', async () => {
    const r = await runs.synthJson;
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    const counts = exponentialCounts(50, 6, 5);
    assert.deepEqual(
      s.classes.map((c: { train: number }) => c.train),
      counts,
    );
    assert.equal(
      s.trainSize,
      counts.reduce((a, b) => a + b),
    );
    assert.equal(s.imbalanceRatio, counts[0] / counts[5]);
  });

  it('reports MNIST-LT from configs/mnist-lt.yaml', async () => {
    const r = await runs.mnistJson;
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    const counts = [663, 397, 238, 142, 85, 51, 30, 18, 11, 6];
    assert.deepEqual(
      s.classes.map((c: { train: number }) => c.train),
      counts,
    );
    assert.deepEqual(
      s.classes.map((c: { id: number }) => c.id),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    assert.equal(s.trainSize, 1641);
    assert.equal(s.testSize, 2000);
    assert.equal(s.numClasses, 10);
    assert.deepEqual(s.shots, { many: 4, medium: 3, few: 3 });
    assert.equal(s.imbalanceRatio, 663 / 6);
    const reversed = classProbabilities('reversed', counts);
    s.classes.forEach((c: { reversed: number; balanced: number }, i: number) => {
      assert.ok(Math.abs(c.reversed - reversed[i]) < 1e-12);
      assert.equal(c.balanced, 0.1);
    });
    const t = await runs.mnistTable;
    assert.equal(t.code, 0, t.stderr);
    assert.equal(field(t.stdout, 'train images'), '1,641');
    assert.deepEqual(rows(t.stdout)[9].slice(0, 6), ['10', '9', '9', '6', '0.37%', 'few']);
  });

  it('a bad config path is one clear line and exit status 2', async () => {
    const r = await runs.badPath;
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^bbn: cannot read config file .*absent\.yaml: ENOENT$/);
  });

  it('a missing CIFAR root is one clear line naming the directory and its files', async () => {
    const r = await runs.noCifar;
    assert.equal(r.code, 2);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^bbn: dataset\.root .*no-such-dir is not a directory/);
    assert.match(lines[0], /data_batch_1\.bin.*test_batch\.bin/);
  });
});
