/**
 * A run refused before it trained (bad data): on the default Temporal path it is refused before a
 * server, a workflow or a run directory exists, with one line and exit 2 (no retries, no "resume
 * it" hint); on every path it leaves no stub run directory, a directory the user made stays as it
 * was, and a run that `--force` moved aside comes back. Real `bin/bbn.mjs` processes, real CIFAR
 * binaries with one truncated file.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { writeCifar10 } from '../data/fixtures.ts';
import { copyRun, digestTree, tempDir, trainFixture } from '../helpers/run-fixture.ts';

const ROOT = join(import.meta.dirname, '..', '..');
let badYaml: string;
let truncated: string;
let good: string;

before(async () => {
  const root = tempDir('bbn-refused-');
  const cifar = join(root, 'cifar');
  mkdirSync(cifar);
  writeCifar10(cifar, 10, 10);
  truncated = join(cifar, 'data_batch_3.bin');
  writeFileSync(truncated, Buffer.alloc(100));
  badYaml = join(root, 'bad.yaml');
  writeFileSync(
    badYaml,
    stringify({
      name: 'refused',
      dataset: { kind: 'cifar10', root: cifar, imbalanceRatio: 1 },
      model: { depth: 8, baseWidth: 4 },
      train: { epochs: 1, batchSize: 8 },
    }),
  );
  good = (await trainFixture()).dir;
});

/** `bbn …` as a user runs it: no Temporal address in the environment (the embedded default). */
function bbn(args: string[]) {
  const env = { ...process.env };
  for (const k of Object.keys(env))
    if (k.startsWith('BBN_TEMPORAL') || k.startsWith('TEMPORAL_')) delete env[k];
  return spawnSync(process.execPath, [join(ROOT, 'bin', 'bbn.mjs'), ...args], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
    timeout: 120_000,
  });
}

const ONE_LINE = /^bbn: CIFAR-10 file .*data_batch_3\.bin is truncated: 100 bytes [^\n]*\n$/;

describe('bbn train - a run refused before it trained', () => {
  it('Temporal path: bad data is one line, exit 2, no server or retries, no run directory', () => {
    const out = join(tempDir(), 'run');
    const r = bbn(['train', '-c', badYaml, '-o', out]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, ONE_LINE);
    assert.ok(r.stderr.includes(truncated), 'names the file');
    assert.doesNotMatch(r.stderr + r.stdout, /temporal|Activity failed|--resume|attempt/i);
    assert.equal(existsSync(out), false, 'no stub run directory');
  });

  it('Temporal path: a directory the user made is left exactly as it was', () => {
    const out = tempDir();
    writeFileSync(join(out, 'notes.txt'), 'mine\n');
    const r = bbn(['train', '-c', badYaml, '-o', out]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, ONE_LINE);
    assert.deepEqual(readdirSync(out), ['notes.txt']);
  });

  it('--no-temporal: the claimed directory is removed again (refused after the claim)', () => {
    const out = join(tempDir(), 'run');
    const r = bbn(['train', '--no-temporal', '-c', badYaml, '-o', out]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /^bbn: CIFAR-10 file .*data_batch_3\.bin is truncated/m);
    assert.doesNotMatch(r.stderr, /^\s+at .*:\d+:\d+\)?$/m, 'no stack trace');
    assert.equal(existsSync(out), false, 'no stub run directory');
  });

  it('--no-temporal --force: the run moved aside comes back unchanged', () => {
    const dir = copyRun(good);
    const beforeDigest = digestTree(dir);
    const r = bbn(['train', '--no-temporal', '--force', '-c', badYaml, '-o', dir]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /moved the previous run in .* to .*\.replaced-/);
    assert.match(r.stderr, /moved the previous run back to /);
    assert.deepEqual(digestTree(dir), beforeDigest);
    assert.deepEqual(
      readdirSync(join(dir, '..')).filter((n) => n.includes('.replaced-')),
      [],
      'nothing left aside',
    );
  });

  it('Temporal path --force: refused before anything moves', () => {
    const dir = copyRun(good);
    const beforeDigest = digestTree(dir);
    const r = bbn(['train', '--force', '-c', badYaml, '-o', dir]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, ONE_LINE);
    assert.deepEqual(digestTree(dir), beforeDigest);
  });
});
