/**
 * A real multi-process run (`bbn train --workers 2`, the tiny config) with its ranks publishing to a
 * real nats-server through `NATS_URL`, which the launched children inherit: the events and the
 * `bbn-runs` status a subscriber reads back, and that SIGKILLing nats-server mid-run changes
 * neither the run's outcome nor its final weights.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from 'nats';
import { startNatsServer } from '../../src/devservers/index.ts';
import { listRunStatuses, subscribeRun, type TrainingEvent } from '../../src/events/index.ts';
import { readMetrics } from '../../src/worker/run-dir.ts';
import {
  finalParams,
  launch,
  removeTempDirs,
  TINY,
  tempDir,
  writeTinyConfig,
} from '../distributed/fixtures.ts';
import { waitUntil } from '../helpers/servers.ts';

const RUN = TINY.name as string;
let configPath = '';
/** Final weights of the run without NATS: the reference both NATS runs must reproduce bit for bit. */
let reference: Float32Array | undefined;

/** Runs `body` with NATS_URL set for the rank processes it spawns, restoring it after. */
async function withNatsUrl<T>(url: string | undefined, body: () => Promise<T>): Promise<T> {
  const saved = process.env.NATS_URL;
  if (url === undefined) delete process.env.NATS_URL;
  else process.env.NATS_URL = url;
  try {
    return await body();
  } finally {
    if (saved === undefined) delete process.env.NATS_URL;
    else process.env.NATS_URL = saved;
  }
}

const same = (a: Float32Array, b: Float32Array) =>
  Buffer.compare(
    Buffer.from(a.buffer, a.byteOffset, a.byteLength),
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  ) === 0;

before(async () => {
  configPath = writeTinyConfig();
  const out = tempDir();
  const r = await withNatsUrl(undefined, () => launch({ configPath, outDir: out, workers: 2, runId: RUN }));
  assert.equal(r.outcome.kind, 'finished');
  reference = finalParams(out);
});
after(removeTempDirs);

describe('run events over NATS (real worker processes, real nats-server)', () => {
  it('a W=2 launch publishes steps of both ranks, every epoch, checkpoints, run-end and a completed KV status', async (t) => {
    const nats = await startNatsServer();
    let nc: NatsConnection | undefined;
    try {
      nc = await connect({ servers: nats.address });
      const events: TrainingEvent[] = [];
      const sub = subscribeRun(nc, RUN, { onEvent: (e) => events.push(e) });
      await nc.flush();
      const out = tempDir();
      const r = await withNatsUrl(nats.address, () =>
        launch({ configPath, outDir: out, workers: 2, runId: RUN }),
      );
      assert.equal(r.outcome.kind, 'finished');
      await waitUntil('run-end', () => events.some((e) => e.kind === 'run-end'), 10_000);
      sub.unsubscribe();

      const of = <K extends TrainingEvent['kind']>(k: K) =>
        events.filter((e): e is Extract<TrainingEvent, { kind: K }> => e.kind === k);
      const ranks = new Set(of('step').map((e) => e.source.rank));
      assert.deepEqual([...ranks].sort(), [0, 1], 'steps of both ranks');
      for (const e of of('step')) assert.ok(e.metadata.samplesPerSecond > 0 && e.metadata.loss > 0);
      const rows = readMetrics(out);
      assert.deepEqual(
        of('alpha').map((e) => e.metadata.epoch),
        [1, 2, 3],
      );
      assert.deepEqual(
        of('epoch-start').map((e) => e.metadata),
        [1, 2, 3].map((epoch) => ({ epoch, steps: 5 })),
      );
      assert.deepEqual(
        of('alpha').map((e) => [e.metadata.alpha, e.metadata.lr]),
        rows.map((m) => [m.alpha, m.lr]),
        'the α/lr mirror is what the epochs trained with',
      );
      assert.deepEqual(
        of('epoch-end').map((e) => [e.metadata.epoch, e.metadata.top1, e.metadata.trainLoss]),
        rows.map((m) => [m.epoch, m.testTop1, m.trainLoss]),
      );
      assert.deepEqual(
        of('checkpoint').map((e) => e.metadata.epoch),
        [1, 2, 3],
      );
      assert.match(of('checkpoint')[2].metadata.uri, /^file:\/\/.*ckpt-e000003-s0000000\.bbnckpt$/);
      assert.deepEqual(of('run-end')[0].metadata, { state: 'completed', reason: null });

      const statuses = await listRunStatuses(nc);
      const status = statuses.find((s) => s.runId === RUN);
      assert.ok(status, 'the run is in bbn-runs');
      assert.deepEqual(
        { state: status.state, epoch: status.epoch, epochs: status.epochs, bestTop1: status.bestTop1 },
        { state: 'completed', epoch: 3, epochs: 3, bestTop1: Math.max(...rows.map((m) => m.testTop1)) },
      );
      assert.ok(same(finalParams(out), reference!), 'publishing changed no weight');
      t.diagnostic(
        `${events.length} events (${of('step').length} steps); launch ${r.outcome.seconds.toFixed(1)} s`,
      );
    } finally {
      await nc?.close();
      await nats.stop();
    }
  });

  it('SIGKILLing nats-server mid-run: the run finishes with the same final weights as without NATS', async (t) => {
    const nats = await startNatsServer();
    let nc: NatsConnection | undefined;
    try {
      nc = await connect({ servers: nats.address, maxReconnectAttempts: 0 });
      let killedAt: { epoch: number; step: number } | undefined;
      subscribeRun(nc, RUN, {
        onEvent: (e) => {
          // First proof that the workers publish: kill the server under the running world.
          if (e.kind === 'step' && !killedAt) {
            killedAt = { epoch: e.metadata.epoch, step: e.metadata.step };
            process.kill(nats.pid, 'SIGKILL');
          }
        },
      });
      await nc.flush();
      const out = tempDir();
      const r = await withNatsUrl(nats.address, () =>
        launch({ configPath, outDir: out, workers: 2, runId: RUN }),
      );
      assert.ok(killedAt, 'nats-server was killed while the run was publishing');
      assert.equal(r.outcome.kind, 'finished');
      assert.deepEqual(
        readMetrics(out).map((m) => m.epoch),
        [1, 2, 3],
      );
      assert.ok(same(finalParams(out), reference!), 'final weights equal the run without NATS');
      t.diagnostic(
        `killed nats-server at epoch ${killedAt.epoch} step ${killedAt.step}; launch ${r.outcome.seconds.toFixed(1)} s`,
      );
    } finally {
      await nc?.close().catch(() => undefined);
      await nats.stop();
    }
  });
});
