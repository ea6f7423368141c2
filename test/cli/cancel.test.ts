/**
 * A run stopped from elsewhere tells the truth: `bbn cancel RUN` during `bbn train` stops it with a
 * checkpoint and the training command exits 3 (not 0, not Ctrl-C's 130); `bbn status DIR` then
 * says stopped; `--resume` finishes the run, and a second `--resume` says it is already complete.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { readMetrics } from '../../src/worker/run-dir.ts';
import { BIN, ROOT, timeBbn } from '../helpers/cli-timing.ts';
import { tinyRun } from '../helpers/tiny.ts';

const dir = mkdtempSync(join(tmpdir(), 'bbn-cancel-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** `bbn train …`; `onLine` sees each stderr line as it comes. */
function train(
  args: string[],
  onLine: (line: string) => void,
): Promise<{ code: number | null; out: string }> {
  const env = { ...process.env };
  for (const k of Object.keys(env))
    if (k.startsWith('BBN_TEMPORAL') || k.startsWith('TEMPORAL_')) delete env[k];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'train', ...args], { cwd: ROOT, env });
    let out = '';
    let partial = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d;
      partial += d;
      const lines = partial.split(/\r|\n/);
      partial = lines.pop() ?? '';
      for (const line of lines) onLine(line);
    });
    child.on('close', (code) => resolve({ code, out }));
  });
}

describe('bbn cancel of a bbn train run', () => {
  it('exits 3 with a checkpoint; status says stopped; --resume finishes; again: already complete', {
    timeout: 300_000,
  }, async () => {
    const config = join(dir, 'tiny.yaml');
    writeFileSync(
      config,
      stringify(tinyRun({ name: 'cancel-tiny', dataset: { perClass: 320 }, train: { epochs: 3 } })),
    );
    const out = join(dir, 'run');
    let temporal = '';
    let cancelled: Promise<Awaited<ReturnType<typeof timeBbn>>> | undefined;
    const first = await train(['-c', config, '-o', out], (line) => {
      // "temporal: dev server on HOST:PORT (state in …)": where `bbn cancel` finds the run.
      temporal ||= /^temporal: dev server on (\S+) /.exec(line)?.[1] ?? '';
      if (!cancelled && line.startsWith('epoch 1/3 loss'))
        cancelled = timeBbn(['cancel', 'run', '--temporal', temporal]);
    });
    assert.ok(cancelled, `saw epoch 1 end:\n${first.out}`);
    const c = await cancelled;
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /^run run: cancelled; final checkpoint .*ckpt-/);
    assert.equal(first.code, 3, `bbn train stopped by bbn cancel exits 3:\n${first.out}`);
    assert.match(first.out, /stopped; checkpoint .*\nresume with: bbn train --resume /);
    assert.ok(readMetrics(out).length < 3);

    const status = await timeBbn(['status', out]);
    assert.match(status.stdout, /: stopped \(not running\); continue with: bbn train --resume /);

    const second = await train(['--resume', out], () => {});
    assert.equal(second.code, 0, second.out);
    const third = await train(['--resume', out], () => {});
    assert.equal(third.code, 0, third.out);
    assert.match(third.out, /is already complete \(3\/3 epochs\); nothing to resume/);
    assert.doesNotMatch(third.out, /temporal: dev server/, 'no dev server for a complete run');
  });
});
