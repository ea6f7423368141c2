/** loadRunConfig names where a bad value came from: the YAML file, or the override that set it. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { loadRunConfig } from '../../src/cli/config-file.ts';
import { ConfigError } from '../../src/core/config.ts';
import { tinyRun } from '../helpers/tiny.ts';

const dir = mkdtempSync(join(tmpdir(), 'bbn-config-file-'));
const good = join(dir, 'good.yaml');
const bad = join(dir, 'bad.yaml');
writeFileSync(good, stringify(tinyRun()));
writeFileSync(bad, stringify(tinyRun({ train: { batchSize: 0 } })));
after(() => rmSync(dir, { recursive: true, force: true }));

const messageOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail('no ConfigError');
};

describe('loadRunConfig blames the override, not the file', () => {
  it('a bad override value names the override, and not the file', () => {
    const m = messageOf(() => loadRunConfig(good, ['train.lr=abc']));
    assert.match(m, /^override train\.lr=abc: train\.lr: .*expected number/);
    assert.ok(!m.includes(good), m);
  });

  it('an unknown key from an override names that override', () => {
    const m = messageOf(() => loadRunConfig(good, ['method=ce', 'train.lrr=1']));
    assert.match(m, /^override train\.lrr=1: train\.lrr: unknown key/);
  });

  it("the file's own mistakes stay the file's, beside the override's", () => {
    const m = messageOf(() => loadRunConfig(bad, ['dataset.perClass=-3']));
    assert.match(m, /^invalid config:\n/);
    assert.ok(m.includes(`${bad}: train.batchSize:`), m);
    assert.match(m, /override dataset\.perClass=-3: dataset\.perClass:/);
  });

  it('a bad file with harmless overrides keeps the plain file message', () => {
    const m = messageOf(() => loadRunConfig(bad, ['train.lr=0.1']));
    assert.match(
      m,
      new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is invalid:\\n  train\\.batchSize:`),
    );
  });
});
