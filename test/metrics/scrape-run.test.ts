/**
 * Prometheus endpoints of a live run: `bbn train --workers 2 --metrics-port 0 --nats URL` (the
 * coordinator in the training process, two real `bbn worker` rank processes), scraped over HTTP
 * while they train and parsed by our strict parser and, where Python has it, by the Prometheus
 * project's own `prometheus_client` parser. The run is then cancelled (the ranks agree to stop
 * after one step) so the scrapes never race the run's end.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { connect } from 'nats';
import { trainDurably } from '../../src/cli/durable-train.ts';
import { subscribeRun, type TrainingEvent } from '../../src/events/index.ts';
import { runHandle } from '../../src/orchestration/client.ts';
import { cancelSignal } from '../../src/orchestration/messages.ts';
import { removeTempDirs, tempDir, tinyConfig } from '../distributed/fixtures.ts';
import { startTestNats, startTestTemporal, type TestServer, waitUntil } from '../helpers/servers.ts';
import {
  assertSameAsPrometheusClient,
  type Family,
  parseExposition,
  parseWithPrometheusClient,
  sampleValue,
} from './exposition.ts';

const RUN = 'scrape-run';

let nats: TestServer | undefined;
let temporal: TestServer | undefined;
before(async () => {
  [nats, temporal] = await Promise.all([startTestNats(), startTestTemporal()]);
});
after(async () => {
  await Promise.all([nats?.stop(), temporal?.stop()]);
  removeTempDirs();
});

async function scrape(url: string): Promise<{ text: string; families: Map<string, Family> }> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return { text, families: parseExposition(text) };
}

test('prometheus - the ranks and the coordinator serve /metrics during a run; both parsers agree', async (t) => {
  // Long enough that the run is still training when we scrape; it is cancelled after.
  const cfg = tinyConfig();
  cfg.train.epochs = 40;
  const out = tempDir();
  const events: TrainingEvent[] = [];
  const nc = await connect({ servers: nats!.address });
  subscribeRun(nc, RUN, { onEvent: (e) => events.push(e) });
  await nc.flush();
  const connection = await Connection.connect({ address: temporal!.address });
  const workerUrls: (string | undefined)[] = [];
  let coordinatorUrl: string | undefined;
  const lines: string[] = [];
  const run = trainDurably({
    cfg,
    outDir: out,
    workers: 2,
    resume: false,
    runId: RUN,
    temporal: temporal!.address,
    telemetry: { nats: nats!.address, metricsPort: '0' },
    say: (line) => {
      lines.push(line);
      coordinatorUrl ??= /^coordinator metrics at (\S+)$/.exec(line)?.[1];
    },
    onRankLine: (rank, line) => {
      lines.push(`[rank ${rank}] ${line}`);
      const m = /^rank \d+: metrics at (\S+)$/.exec(line);
      if (m) workerUrls[rank] = m[1];
    },
  });
  let ended = false;
  run.finally(() => {
    ended = true;
  });
  try {
    const fail = () => lines.slice(-10).join('\n');
    await waitUntil(
      'both ranks serve /metrics',
      () => ended || workerUrls.filter(Boolean).length === 2,
      60_000,
    );
    assert.ok(!ended, fail());
    assert.ok(coordinatorUrl, `the coordinator serves /metrics: ${fail()}`);

    // Scrape each rank until it has trained a few steps (every scrape must parse).
    const workerScrapes: Awaited<ReturnType<typeof scrape>>[] = [];
    for (const rank of [0, 1]) {
      let last: Awaited<ReturnType<typeof scrape>> | undefined;
      const labels = { run: RUN, rank: String(rank) };
      await waitUntil(
        `rank ${rank} reports 3 steps`,
        async () => {
          last = await scrape(workerUrls[rank]!);
          return (sampleValue(last.families, 'bbn_step_seconds_count', labels) ?? 0) >= 3;
        },
        60_000,
      );
      const f = last!.families;
      assert.equal(f.get('bbn_step_seconds')?.type, 'histogram');
      assert.ok((sampleValue(f, 'bbn_step_seconds_sum', labels) ?? 0) > 0);
      assert.ok((sampleValue(f, 'bbn_allreduce_seconds_count', labels) ?? 0) >= 3);
      // W=2: each rank sends half the wire each way (reduce-scatter + all-gather), headers included.
      assert.ok((sampleValue(f, 'bbn_allreduce_bytes', labels) ?? 0) > 1000, 'allreduce bytes reported');
      assert.ok((sampleValue(f, 'bbn_samples_per_second', labels) ?? 0) > 0);
      assert.ok((sampleValue(f, 'bbn_epoch', labels) ?? 0) >= 1);
      assert.ok((sampleValue(f, 'bbn_alpha', labels) ?? -1) >= 0, 'BBN has an α');
      workerScrapes.push(last!);
    }

    let coord: Awaited<ReturnType<typeof scrape>> | undefined;
    await waitUntil(
      'the coordinator reports both ranks alive with heartbeat ages',
      async () => {
        coord = await scrape(coordinatorUrl!);
        const f = coord.families;
        return (
          sampleValue(f, 'bbn_ranks', { run: RUN, status: 'alive' }) === 2 &&
          sampleValue(f, 'bbn_heartbeat_age_seconds', { run: RUN, rank: '1' }) !== undefined
        );
      },
      10_000,
    );
    const cf = coord!.families;
    assert.equal(sampleValue(cf, 'bbn_generation', { run: RUN }), 0);
    assert.equal(sampleValue(cf, 'bbn_world_size', { run: RUN }), 2);
    for (const rank of ['0', '1']) {
      const age = sampleValue(cf, 'bbn_heartbeat_age_seconds', { run: RUN, rank }) ?? -1;
      assert.ok(age >= 0 && age < 5, `rank ${rank} heartbeat age ${age} s`);
    }
    assert.ok((sampleValue(cf, 'bbn_epoch', { run: RUN }) ?? 0) >= 1);
    assert.ok((sampleValue(cf, 'bbn_learning_rate', { run: RUN }) ?? 0) > 0);

    const py = parseWithPrometheusClient([...workerScrapes.map((s) => s.text), coord!.text]);
    if (py) {
      [...workerScrapes, coord!].forEach((s, i) => {
        assertSameAsPrometheusClient(s.families, py[i]);
      });
    } else {
      t.diagnostic('NOT CHECKED against prometheus_client (no Python with it); our strict parser only');
    }

    // Stop in order: the ranks agree to stop after one step; the run ends cancelled.
    await runHandle(new Client({ connection }), RUN).signal(cancelSignal);
    assert.equal((await run).state, 'cancelled', fail());

    const from = (role: string, kind: string) =>
      events.filter((e) => e.source.role === role && e.kind === kind).map((e) => e.source.rank);
    assert.ok(from('coordinator', 'alpha').length >= 1, 'the coordinator mirrors the α broadcast');
    assert.deepEqual(
      new Set(from('worker', 'worker-join')),
      new Set([0, 1]),
      'membership from the coordinator',
    );
    assert.deepEqual(new Set(from('worker', 'heartbeat')), new Set([0, 1]));
    t.diagnostic(`${events.length} events; parsers: ours${py ? ' + prometheus_client' : ''}`);
  } finally {
    if (!ended)
      await runHandle(new Client({ connection }), RUN)
        .terminate('test cleanup')
        .catch(() => {});
    await run.catch(() => {});
    await connection.close();
    await nc.close();
  }
});
