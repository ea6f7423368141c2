/**
 * How `bbn train` (Temporal path) ends when its run does not complete. A run whose workflow failed
 * is not a user error: exit 1, as README's exit-status table says, the reason and how to continue
 * on one `bbn:` line, no stack trace. A rank that fails for good (here the divergence guard at the
 * first step, train.lr=1e308, a config that cannot train) ends the run at once with that reason
 * (exit 2, the config's fault); it used to leave the workflow retrying its task forever, so `bbn
 * train` never returned.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { runHandle } from '../../src/orchestration/client.ts';
import { tempDir } from '../distributed/fixtures.ts';
import { processSuite } from '../helpers/process-suite.ts';
import { waitUntil } from '../helpers/servers.ts';

const suite = processSuite();

const said = (lines: readonly string[]) => lines.filter((l) => l.startsWith('bbn: '));

describe('bbn train - a run that does not complete', () => {
  it('a failed workflow (terminated by an operator): exit 1, the reason on one line', {
    timeout: 180_000,
  }, async () => {
    const runId = `failed-${process.pid}`;
    const train = suite.bbn([
      'train',
      '-c',
      suite.configPath,
      '-o',
      tempDir(),
      '--run-id',
      runId,
      '--temporal',
      suite.server.address,
    ]);
    await waitUntil(
      'the run started',
      () => train.lines.some((l) => l.includes(`run ${runId}: started`)),
      120_000,
    );
    const connection = await Connection.connect({ address: suite.server.address });
    try {
      await runHandle(new Client({ connection }), runId).terminate('stopped by the operator for the test');
    } finally {
      await connection.close();
    }
    assert.equal(await train.exited, 1, train.lines.join('\n'));
    const lines = said(train.lines);
    assert.equal(lines.length, 1, train.lines.join('\n'));
    assert.match(
      lines[0],
      new RegExp(
        `^bbn: run ${runId} failed: .*; once fixed, continue it from its last good checkpoint with bbn train --resume `,
      ),
    );
    assert.ok(!train.lines.some((l) => /^\s+at .*:\d+:\d+\)?$/.test(l)), 'no stack trace');
  });

  it('a rank that fails for good (divergence at step 1): the run ends at once, one line naming epoch and step', {
    timeout: 180_000,
  }, async () => {
    const train = suite.bbn([
      'train',
      '-c',
      suite.configPath,
      '-o',
      tempDir(),
      '--temporal',
      suite.server.address,
      'train.lr=1e308',
      'train.epochs=1',
    ]);
    assert.equal(await train.exited, 2, train.lines.join('\n'));
    const lines = said(train.lines);
    assert.equal(lines.length, 1, train.lines.join('\n'));
    assert.match(lines[0], /^bbn: training diverged at epoch 1 step 1 \(rank 0\)/);
    assert.ok(!train.lines.some((l) => /^\s+at .*:\d+:\d+\)?$/.test(l)), 'no stack trace');
  });
});
