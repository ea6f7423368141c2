/**
 * What people watching a durable run see over NATS, with real processes: `bbn train` on a real
 * Temporal server, publishing to a real nats-server, followed by `bbn watch`, `bbn runs` and
 * `bbn status` processes.
 *
 * - `--workers 2`: the run publishes its end (`run-end`, a `completed` status), so `bbn watch`
 *   exits and `bbn runs` says completed; a rank scaled away (2 -> 1) is shown as left.
 * - W = 1 (in-process): `bbn scale RUN 2` is refused in one line (exit 2) and the run goes on;
 *   while paused, `bbn runs` says `paused` at the completed epoch, `bbn status` names the epoch its
 *   α belongs to and the training terminal announces it; the running status carries the step
 *   within the epoch; `bbn cancel` then ends it as `cancelled` (run-end with the resume command).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { connect, type NatsConnection } from 'nats';
import { stringify } from 'yaml';
import { RUNS_BUCKET, type RunStatus, subscribeRun, type TrainingEvent } from '../../src/events/index.ts';
import { pauseRun, scaleRun } from '../../src/orchestration/client.ts';
import { readMetrics } from '../../src/worker/run-dir.ts';
import { bbn } from '../helpers/bbn-cli.ts';
import { startTestNats, startTestTemporal, type TestServer, waitUntil } from '../helpers/servers.ts';
import { tinyRun } from '../helpers/tiny.ts';

const dir = mkdtempSync(join(tmpdir(), 'bbn-lifecycle-'));

let temporal: TestServer;
let nats: TestServer;
let nc: NatsConnection;
let client: Client;
let connection: Connection;

before(async () => {
  [temporal, nats] = await Promise.all([startTestTemporal(), startTestNats()]);
  nc = await connect({ servers: nats.address });
  connection = await Connection.connect({ address: temporal.address });
  client = new Client({ connection });
});
after(async () => {
  await nc?.close();
  await connection?.close();
  await Promise.all([temporal?.stop(), nats?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

/** Every status the `bbn-runs` bucket holds for `runId`, in order, as they are written. */
async function recordStatuses(runId: string): Promise<{ statuses: RunStatus[]; stop(): void }> {
  const kv = await nc.jetstream().views.kv(RUNS_BUCKET, { history: 1 });
  const statuses: RunStatus[] = [];
  const iter = await kv.watch({ key: runId });
  void (async () => {
    for await (const e of iter) if (e.value.length > 0) statuses.push(e.json<RunStatus>());
  })();
  return { statuses, stop: () => iter.stop() };
}

/** Records the run's events. */
async function recordEvents(runId: string): Promise<TrainingEvent[]> {
  const events: TrainingEvent[] = [];
  subscribeRun(nc, runId, { onEvent: (e) => events.push(e) });
  await nc.flush();
  return events;
}

function writeConfig(name: string, extra: Record<string, unknown>): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify(tinyRun({ name, ...extra })));
  return path;
}

describe('a durable run published over NATS (real bbn processes, Temporal and nats-server)', () => {
  it('--workers 2: run-end and a completed status end bbn watch; a rank scaled away shows as left', {
    timeout: 300_000,
  }, async () => {
    const runId = 'life-w2';
    // 37 steps an epoch (600 images): the scale below is accepted while epoch 1 trains, epochs
    // before the last one begins; at 5 steps an epoch the whole run could end first under load.
    const configPath = writeConfig(runId, { dataset: { perClass: 320 }, train: { epochs: 3 } });
    const out = join(dir, runId);
    const events = await recordEvents(runId);
    const kv = await recordStatuses(runId);
    const watch = bbn(['watch', runId, '--nats', nats.address]);
    const train = bbn([
      ...['train', '-c', configPath, '-o', out, '--workers', '2'],
      ...['--temporal', temporal.address, '--nats', nats.address],
    ]);
    // Scale down while epoch 1 trains: rank 1 is stopped at the boundary.
    await waitUntil(
      'a step of rank 1',
      () => events.some((e) => e.kind === 'step' && e.source.rank === 1),
      180_000,
    );
    assert.equal(await scaleRun(client, runId, 1), 1);
    const t = await train.done;
    assert.equal(t.code, 0, t.stderr);
    const w = await watch.done; // bbn watch ends by itself when the run ends
    kv.stop();
    assert.equal(w.code, 0, w.stderr);

    const ends = events.filter((e) => e.kind === 'run-end');
    assert.deepEqual(
      ends.map((e) => [e.source, e.metadata]),
      [
        [
          { role: 'workflow', rank: null },
          { state: 'completed', reason: null },
        ],
      ],
    );
    const leave = events.findIndex((e) => e.kind === 'worker-leave' && e.source.rank === 1);
    assert.ok(leave >= 0, 'rank 1 left');
    assert.ok(
      !events.slice(leave).some((e) => e.kind === 'step' && e.source.rank === 1),
      'no step of rank 1 after it left',
    );
    const frame = w.stdout.trim().split('\n\n').at(-1) ?? '';
    assert.match(frame, /\[run completed\]/);
    assert.match(frame, /worker 1 .*\bleft\s*$/m);
    assert.match(frame, /worker 0 .*\bok\s*$/m);

    const rows = readMetrics(out);
    assert.deepEqual(kv.statuses.at(-1), {
      ...kv.statuses.at(-1),
      state: 'completed',
      epoch: 3,
      epochs: 3,
      step: 0,
      bestTop1: Math.max(...rows.map((r) => r.testTop1)),
    });
    const runs = await bbn(['runs', '--nats', nats.address]).done;
    assert.equal(runs.code, 0, runs.stderr);
    assert.match(runs.stdout, /life-w2\s+completed\s+3\/3\s+0\s/);
  });

  it('W = 1: scale 2 is refused in one line and the run goes on; paused shows in bbn runs and bbn status; cancel publishes its end', {
    timeout: 300_000,
  }, async () => {
    const runId = 'life-w1';
    // 37 steps an epoch: steps are seen well inside an epoch.
    const configPath = writeConfig(runId, { dataset: { perClass: 320 }, train: { epochs: 3 } });
    const out = join(dir, runId);
    const events = await recordEvents(runId);
    const kv = await recordStatuses(runId);
    const train = bbn([
      'train',
      '-c',
      configPath,
      '-o',
      out,
      '--temporal',
      temporal.address,
      '--nats',
      nats.address,
    ]);
    await waitUntil('a step', () => events.some((e) => e.kind === 'step'), 180_000);

    const scale = await bbn(['scale', runId, '2', '--temporal', temporal.address]).done;
    assert.equal(scale.code, 2, `refused with exit 2: ${scale.stdout}${scale.stderr}`);
    assert.equal(scale.stderr.trim().split('\n').length, 1, `one line: ${scale.stderr}`);
    assert.match(scale.stderr, /^bbn: scale: run life-w1 trains in one process .* --workers 2\n$/);

    await pauseRun(client, runId);
    await waitUntil('the paused status', () => kv.statuses.at(-1)?.state === 'paused', 120_000);
    const paused = kv.statuses.at(-1)!;
    const done = readMetrics(out);
    assert.equal(paused.epoch, done.length, 'paused at the completed epoch');
    assert.equal(paused.step, 0);
    const runs = await bbn(['runs', '--nats', nats.address]).done;
    assert.match(runs.stdout, new RegExp(`life-w1\\s+paused\\s+${paused.epoch}/3\\s+0\\s`));
    const status = await bbn(['status', runId, '--temporal', temporal.address]).done;
    assert.equal(status.code, 0, status.stderr);
    const last = done.at(-1)!;
    assert.match(
      status.stdout,
      new RegExp(`paused \\(RUNNING\\), epoch ${last.epoch}/3 done \\(next: epoch ${last.epoch + 1}\\)`),
    );
    assert.match(status.stdout, new RegExp(`\\n  epoch ${last.epoch}: alpha ${last.alpha} `));

    // Stopped from elsewhere while paused: the host publishes the end the in-process rank never sees.
    const cancel = await bbn(['cancel', runId, '--temporal', temporal.address]).done;
    assert.equal(cancel.code, 0, cancel.stderr);
    const t = await train.done;
    kv.stop();
    assert.equal(t.code, 3, `stopped by bbn cancel: ${t.stderr}`);
    assert.match(
      t.stderr,
      new RegExp(`run life-w1: paused after epoch ${last.epoch}/3; continue it with bbn resume life-w1\\n`),
      'the pause is announced in the training terminal',
    );
    assert.deepEqual(
      readMetrics(out).map((m) => m.epoch),
      done.map((m) => m.epoch),
      'the refused scale left the run training to its pause',
    );
    assert.ok(
      kv.statuses.some((s) => s.state === 'running' && s.step > 0),
      `a running status inside an epoch: ${JSON.stringify(kv.statuses.map((s) => [s.state, s.epoch, s.step]))}`,
    );
    assert.deepEqual(
      [kv.statuses.at(-1)?.state, kv.statuses.at(-1)?.epoch, kv.statuses.at(-1)?.step],
      ['cancelled', last.epoch, 0],
    );
    assert.deepEqual(
      events.filter((e) => e.kind === 'run-end').map((e) => e.metadata),
      [{ state: 'cancelled', reason: `stopped with a checkpoint; continue with bbn train --resume ${out}` }],
    );
    const after = await bbn(['runs', '--nats', nats.address]).done;
    assert.match(after.stdout, new RegExp(`life-w1\\s+cancelled\\s+${last.epoch}/3\\s+0\\s`));
  });
});
