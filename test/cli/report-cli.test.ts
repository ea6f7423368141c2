/**
 * `bbn report` as users run it, on a finished and an unfinished run whose configs differ beyond the
 * method: both are reported under the HTML report's labels (directory and method), the unfinished
 * one says so, and a warning names the settings that differ.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { bbn } from '../helpers/bbn-cli.ts';
import { writeSyntheticRun } from '../report/fixtures.ts';

test('bbn report: an unfinished run is reported, labelled as in the HTML report; differing configs are warned about', async () => {
  const root = mkdtempSync(join(tmpdir(), 'bbn-report-cli-'));
  try {
    const a = join(root, 'c10-bbn');
    const b = join(root, 'c10-ce');
    writeSyntheticRun(a, { name: 'a', method: 'bbn', epochs: 4 });
    writeSyntheticRun(b, { name: 'b', method: 'ce', bbn: false, epochs: 3 });
    writeFileSync(join(a, 'config.yaml'), 'name: a\nmethod: bbn\ntrain:\n  epochs: 4\n  lr: 0.1\n');
    writeFileSync(join(b, 'config.yaml'), 'name: b\nmethod: ce\ntrain:\n  epochs: 10\n  lr: 0.1\n');
    rmSync(join(b, 'summary.json'));
    const r = await bbn(['report', a, b]).done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stderr,
      'bbn: warning: the compared runs differ in more than the method: train.epochs (4 vs 10)\n',
    );
    assert.match(r.stdout, /^c10-bbn \(bbn\) last\s+4 /m);
    assert.match(r.stdout, /^c10-ce \(ce\) last\s+3 /m);
    assert.match(r.stdout, /note: c10-ce \(ce\) is unfinished \(trained 3 epoch\(s\)\)/);
    assert.match(r.stdout, /^overall: c10-bbn \(bbn\) wins with /m);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
