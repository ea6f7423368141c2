/**
 * How `bbn train` (Temporal path) ends when its run does not complete. A run whose workflow failed
 * is not a user error: exit 1, as README's exit-status table says, the reason and how to continue
 * on one `bbn:` line, no stack trace. A rank that fails for good (here the divergence guard at the
 * first step, train.lr=1e308, a config that cannot train) ends the run at once with that reason
 * (exit 2, the config's fault); it used to leave the workflow retrying its task forever, so `bbn
 * train` never returned.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { runHandle } from '../../src/orchestration/client.ts';
import { removeTempDirs, tempDir, writeTinyConfig } from '../distributed/fixtures.ts';
import { bbnProcess } from '../helpers/bbn-process.ts';
import { startTestTemporal, type TestServer, waitUntil } from '../helpers/servers.ts';

let server: TestServer;
let configPath: string;
const children: ChildProcess[] = [];

before(async () => {
  server = await startTestTemporal();
  configPath = writeTinyConfig();
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await server?.stop();
  removeTempDirs();
});

const said = (lines: readonly string[]) => lines.filter((l) => l.startsWith('bbn: '));

describe('bbn train - a run that does not complete', () => {
  it('a failed workflow (terminated by an operator): exit 1, the reason on one line', {
    timeout: 180_000,
  }, async () => {
    const runId = `failed-${process.pid}`;
    const train = bbnProcess(
      ['train', '-c', configPath, '-o', tempDir(), '--run-id', runId, '--temporal', server.address],
      children,
    );
    await waitUntil(
      'the run started',
      () => train.lines.some((l) => l.includes(`run ${runId}: started`)),
      120_000,
    );
    const connection = await Connection.connect({ address: server.address });
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
    const train = bbnProcess(
      [
        'train',
        '-c',
        configPath,
        '-o',
        tempDir(),
        '--temporal',
        server.address,
        'train.lr=1e308',
        'train.epochs=1',
      ],
      children,
    );
    assert.equal(await train.exited, 2, train.lines.join('\n'));
    const lines = said(train.lines);
    assert.equal(lines.length, 1, train.lines.join('\n'));
    assert.match(lines[0], /^bbn: training diverged at epoch 1 step 1 \(rank 0\)/);
    assert.ok(!train.lines.some((l) => /^\s+at .*:\d+:\d+\)?$/.test(l)), 'no stack trace');
  });
});
