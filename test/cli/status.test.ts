/**
 * `bbn status` tells the truth at once: a finished or stopped run is read from its directory
 * (no server, well under a second of CPU), an unknown run or a missing Temporal server is one
 * line with exit 2 within seconds, not a stack trace after 25 s. Each case is one real `bbn`
 * process on the compiled CLI (set-up builds it; the test makes sure it is current).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../src/devservers/index.ts';
import { selectBackend } from '../../src/model/backend.ts';
import { runTraining } from '../../src/worker/run.ts';
import { ROOT, timeBbn } from '../helpers/cli-timing.ts';
import { startTestTemporal, type TestServer } from '../helpers/servers.ts';
import { tinyConfig } from '../helpers/tiny.ts';

const dir = mkdtempSync(join(tmpdir(), 'bbn-status-'));
const finished = join(dir, 'finished');
const stopped = join(dir, 'stopped');
let temporal: TestServer | undefined;

before(async () => {
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-dist.mjs')], { cwd: ROOT });
  const backend = (await selectBackend('auto')).name;
  await runTraining(tinyConfig({ train: { epochs: 2 } }), finished, { backend });
  let steps = 0;
  // Stops after 7 steps (epoch 2, step 2) with a step checkpoint, as Ctrl-C does.
  await runTraining(tinyConfig({ train: { epochs: 2 } }), stopped, {
    backend,
    hooks: { shouldStop: () => ++steps > 7 },
  });
});

after(async () => {
  await temporal?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('bbn status', () => {
  it('of a finished run directory: read from its files, no server, under a second of CPU', async () => {
    const r = await timeBbn(['status', finished, '--temporal', `127.0.0.1:${await freePort()}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^run .*finished \(tiny, bbn\): completed, epoch 2\/2\n/);
    assert.match(r.stdout, /last epoch 2: alpha [\d.]+ {2}lr [\d.]+ {2}train loss [\d.]+, top-1 [\d.]+%/);
    assert.match(r.stdout, /checkpoint .*ckpt-e000002-s0000000\.bbnckpt/);
    assert.equal(r.stderr, '');
    assert.ok(r.cpuSeconds < 1, `bbn status DIR took ${r.cpuSeconds.toFixed(2)} s of CPU (bound 1 s)`);
    assert.ok(
      r.wallSeconds < 5,
      `bbn status DIR took ${r.wallSeconds.toFixed(2)} s (bound 5 s on a loaded host)`,
    );
  });

  it('of a stopped run directory: stopped, with the resume command', async () => {
    const r = await timeBbn(['status', stopped, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as { state: string; epoch: number; checkpoint: string };
    assert.equal(s.state, 'stopped');
    assert.equal(s.epoch, 1);
    assert.match(s.checkpoint, /ckpt-e000001-s0000002\.bbnckpt$/);
    const plain = await timeBbn(['status', stopped]);
    assert.match(plain.stdout, /stopped \(not running\); continue with: bbn train --resume /);
  });

  it('of a run id with no Temporal server there: one line, exit 2, within seconds', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const r = await timeBbn(['status', 'no-such-run', '--temporal', address]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(
      r.stderr,
      new RegExp(`^bbn: no Temporal server at ${address} to ask about run no-such-run;`),
    );
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.ok(r.wallSeconds < 5, `took ${r.wallSeconds.toFixed(2)} s`);
  });

  it('of an unknown run on a live Temporal server: one line naming the run, exit 2', async () => {
    temporal = await startTestTemporal();
    const r = await timeBbn(['status', 'no-such-run', '--temporal', temporal.address]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(
      r.stderr,
      `bbn: the Temporal server at ${temporal.address} (namespace default) has no run no-such-run\n`,
    );
  });
});
