/**
 * Live telemetry of the default `bbn train` (W = 1, the model on its compute thread) while steps
 * are long: the shipped CIFAR model (BBN-ResNet-32, batch 256) on CIFAR-shaped synthetic data, the
 * shipped defaults otherwise, a real Temporal server and nats-server. Scraped in a loop from the
 * first step to the epoch's end: every `/metrics` answer comes in under a second, many of them
 * while a step computes, with the loss, top-1 and heartbeat-age gauges; the step events carry the
 * times of their own steps (not one time at the epoch's end).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect, type NatsConnection } from 'nats';
import { stringify } from 'yaml';
import { subscribeRun, type TrainingEvent } from '../../src/events/index.ts';
import { bbn } from '../helpers/bbn-cli.ts';
import { startTestNats, startTestTemporal, type TestServer, waitUntil } from '../helpers/servers.ts';
import { parseExposition, sampleValue } from './exposition.ts';

const RUN = 'live-scrape';
const dir = mkdtempSync(join(tmpdir(), 'bbn-live-scrape-'));
let temporal: TestServer;
let nats: TestServer;
let nc: NatsConnection;

before(async () => {
  [temporal, nats] = await Promise.all([startTestTemporal(), startTestNats()]);
  nc = await connect({ servers: nats.address });
});
after(async () => {
  await nc?.close();
  await Promise.all([temporal?.stop(), nats?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

/**
 * configs/cifar10-lt.yaml's model on synthetic 32x32x3 images, 2 steps of one epoch, at batch 256
 * (128 + 128 images a branch at the shipped 128 gave steps of 0.96-1.02 s here, at the edge of
 * the 1 s a step must last for a blocked /metrics to miss the bound).
 */
const CONFIG = {
  name: RUN,
  seed: 0,
  method: 'bbn',
  dataset: {
    kind: 'synthetic',
    numClasses: 10,
    perClass: 128,
    testPerClass: 4,
    imageSize: 32,
    channels: 3,
    imbalanceRatio: 4,
  },
  model: { backbone: 'resnet_cifar', depth: 32, baseWidth: 16 },
  train: { epochs: 1, batchSize: 256, lr: 0.1 },
};

interface Scrape {
  readonly startedAt: number;
  readonly ms: number;
  /** Step events received before the answer came: the step after them was computing. */
  readonly stepsBefore: number;
  readonly text: string;
}

test('bbn train (W = 1): /metrics answers in < 1 s during long steps; step events carry their own times', {
  timeout: 420_000,
}, async (t) => {
  const configPath = join(dir, 'live.yaml');
  writeFileSync(configPath, stringify(CONFIG));
  const events: TrainingEvent[] = [];
  subscribeRun(nc, RUN, { onEvent: (e) => events.push(e) });
  await nc.flush();
  let url: string | undefined;
  const train = bbn(
    [
      ...['train', '-c', configPath, '-o', join(dir, RUN), '--temporal', temporal.address],
      ...['--nats', nats.address, '--metrics-port', '0'],
    ],
    (line) => {
      url ??= /metrics at (http:\S+)/.exec(line)?.[1];
    },
  );
  const steps = () => events.filter((e) => e.kind === 'step').length;
  await waitUntil('the first step event', () => steps() > 0 || train.child.exitCode !== null, 300_000);
  assert.ok(url, 'bbn train printed its metrics URL');
  const scrapes: Scrape[] = [];
  while (!events.some((e) => e.kind === 'epoch-end') && train.child.exitCode === null) {
    const startedAt = Date.now();
    const res = await fetch(url);
    const text = await res.text();
    scrapes.push({ startedAt, ms: Date.now() - startedAt, stepsBefore: steps(), text });
    await new Promise((r) => setTimeout(r, 100));
  }
  const r = await train.done;
  assert.equal(r.code, 0, r.stderr);

  const stepEvents = events.filter((e): e is Extract<TrainingEvent, { kind: 'step' }> => e.kind === 'step');
  const total = stepEvents[0].metadata.step === 1 ? stepEvents.length : Number.NaN;
  const stepSeconds = stepEvents.map((e) => 1 / e.metadata.stepsPerSecond);
  const slowest = Math.max(...scrapes.map((s) => s.ms));
  t.diagnostic(
    `${scrapes.length} scrapes, slowest ${slowest} ms; steps ${stepSeconds.map((s) => s.toFixed(2)).join(', ')} s`,
  );
  assert.ok(Math.min(...stepSeconds) >= 1, `steps long enough to matter (>= 1 s): ${stepSeconds}`);
  // Mid-step: the answer came before the event of the step that was computing when it was asked.
  const midStep = scrapes.filter((s) => s.stepsBefore < total);
  assert.ok(midStep.length >= 3, `${midStep.length} scrapes while a step computed`);
  for (const s of scrapes) assert.ok(s.ms < 1000, `/metrics answered in ${s.ms} ms`);

  const m = parseExposition(scrapes[scrapes.length - 1].text);
  const l = { run: RUN, rank: '0' };
  assert.ok(Number.isFinite(sampleValue(m, 'bbn_train_loss', l)), 'loss gauge');
  assert.ok((sampleValue(m, 'bbn_heartbeat_age_seconds', l) ?? -1) >= 0, 'heartbeat age gauge');
  assert.ok(Number.isFinite(sampleValue(m, 'bbn_step_seconds_count', l)), 'step histogram');

  // Each step event is stamped when its step ended: one distinct, increasing time per step,
  // spaced by about a step's length, all before the epoch's end.
  const times = stepEvents.map((e) => e.timestamp);
  for (let i = 1; i < times.length; i++) {
    assert.ok(times[i] - times[i - 1] >= 500, `step events ${times[i] - times[i - 1]} ms apart`);
  }
  const end = events.find((e) => e.kind === 'epoch-end');
  assert.ok(end && times.every((x) => x <= end.timestamp));
});
