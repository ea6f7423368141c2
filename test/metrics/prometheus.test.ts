import assert from 'node:assert/strict';
import { test } from 'node:test';
import { register as globalRegistry } from 'prom-client';
import { serveMetrics, TrainingMetrics } from '../../src/metrics/prometheus.ts';

/** Minimal parser of Prometheus text format 0.0.4: `name{labels} value` lines, comments skipped. */
function parseExposition(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(m, `unparsable exposition line: ${line}`);
    out.set(m[1], Number(m[2]));
  }
  return out;
}

test('prometheus - /metrics serves the training series over HTTP in text format', async () => {
  const m = new TrainingMetrics({ run: 'r1', rank: '0' });
  const server = await serveMetrics(m.registry, { port: 0 });
  try {
    m.observeStep({
      stepSeconds: 0.05,
      allreduceSeconds: 0.01,
      allreduceBytes: 4096,
      samplesPerSecond: 1280,
    });
    m.observeStep({
      stepSeconds: 0.07,
      allreduceSeconds: 0.02,
      allreduceBytes: 4096,
      samplesPerSecond: 1100,
    });
    m.setEpoch(3, 0.91, 0.1);
    m.setHeartbeatAge(1.5);
    const res = await fetch(server.url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    const series = parseExposition(await res.text());
    const l = '{run="r1",rank="0"}';
    assert.equal(series.get(`bbn_step_seconds_count${l}`), 2);
    assert.ok(Math.abs((series.get(`bbn_step_seconds_sum${l}`) ?? 0) - 0.12) < 1e-9);
    assert.equal(series.get(`bbn_step_seconds_bucket{le="0.064",run="r1",rank="0"}`), 1);
    assert.equal(series.get(`bbn_allreduce_seconds_count${l}`), 2);
    assert.equal(series.get(`bbn_allreduce_bytes${l}`), 4096);
    assert.equal(series.get(`bbn_samples_per_second${l}`), 1100);
    assert.equal(series.get(`bbn_heartbeat_age_seconds${l}`), 1.5);
    assert.equal(series.get(`bbn_epoch${l}`), 3);
    assert.equal(series.get(`bbn_alpha${l}`), 0.91);
    assert.equal(series.get(`bbn_learning_rate${l}`), 0.1);
    assert.equal((await fetch(server.url.replace('/metrics', '/other'))).status, 404);
  } finally {
    await server.close();
  }
});

test('prometheus - two processes-worth of metrics never touch the global registry', async () => {
  const a = new TrainingMetrics({ run: 'a', rank: '0' });
  const b = new TrainingMetrics({ run: 'b', rank: '1' }); // same metric names: would throw on a shared registry
  a.setEpoch(1, null, 0.2);
  b.setEpoch(2, 0.5, 0.1);
  assert.equal(await globalRegistry.getSingleMetricAsString('bbn_epoch').catch(() => 'absent'), 'absent');
  assert.match(await a.registry.metrics(), /bbn_epoch\{run="a",rank="0"\} 1/);
  assert.doesNotMatch(await a.registry.metrics(), /bbn_alpha\{/, 'alpha null leaves the gauge unset');
  assert.match(await b.registry.metrics(), /bbn_alpha\{run="b",rank="1"\} 0.5/);
});
