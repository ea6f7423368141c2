/**
 * Prometheus endpoints of a live run: `startCoordinator` (what `bbn coordinator` runs) with
 * `--metrics-port 0 --nats URL`, and two real `bbn worker` processes with `--metrics-port 0`,
 * scraped over HTTP while they train and parsed by our strict parser and, where Python has it, by
 * the Prometheus project's own `prometheus_client` parser. The run is then stopped with SIGINT
 * (the world agrees to stop after one step) so the scrapes never race the run's end.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connect } from 'nats';
import { type RunningCoordinator, startCoordinator } from '../../src/cli/coordinator-command.ts';
import { subscribeRun, type TrainingEvent } from '../../src/events/index.ts';
import { removeTempDirs, tempDir, writeTinyConfig } from '../distributed/fixtures.ts';
import { startTestNats, type TestServer, waitUntil } from '../helpers/servers.ts';
import {
  assertSameAsPrometheusClient,
  type Family,
  parseExposition,
  parseWithPrometheusClient,
  sampleValue,
} from './exposition.ts';

const ENTRY = join(dirname(fileURLToPath(import.meta.url)), '..', 'distributed', 'worker-entry.ts');
const RUN = 'scrape-run';
/** Long enough that the run is still training when we scrape; it is stopped by SIGINT. */
const OVERRIDES = ['train.epochs=40', 'distributed.workers=2'];

let nats: TestServer | undefined;
before(async () => {
  nats = await startTestNats();
});
after(async () => {
  await nats?.stop();
  removeTempDirs();
});

async function scrape(url: string): Promise<{ text: string; families: Map<string, Family> }> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return { text, families: parseExposition(text) };
}

test('prometheus - a worker and the coordinator serve /metrics during a run; both parsers agree', async (t) => {
  const configPath = writeTinyConfig();
  const out = tempDir();
  const events: TrainingEvent[] = [];
  const nc = await connect({ servers: nats!.address });
  subscribeRun(nc, RUN, { onEvent: (e) => events.push(e) });
  await nc.flush();
  let coordinator: RunningCoordinator | undefined;
  const children: { proc: ChildProcess; exited: Promise<number | null>; lines: string[] }[] = [];
  try {
    coordinator = await startCoordinator(OVERRIDES, {
      config: configPath,
      host: '127.0.0.1',
      port: '0',
      runId: RUN,
      nats: nats!.address,
      metricsPort: '0',
    });
    const workerUrls: (string | undefined)[] = [];
    for (const rank of [0, 1]) {
      const proc = spawn(
        process.execPath,
        [
          ...['--import', 'tsx', ENTRY, 'worker', '--coordinator', coordinator.address],
          ...['--config', configPath, '--out', out, '--rank', String(rank), '--run-id', RUN],
          ...['--nats', nats!.address, '--metrics-port', '0', ...OVERRIDES],
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const lines: string[] = [];
      for (const stream of [proc.stdout, proc.stderr]) {
        createInterface({ input: stream as NodeJS.ReadableStream }).on('line', (line) => {
          lines.push(line);
          const m = /^rank \d+: metrics at (\S+)$/.exec(line);
          if (m) workerUrls[rank] = m[1];
        });
      }
      const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
      children.push({ proc, exited, lines });
    }
    const fail = () => children.map((c) => c.lines.slice(-5).join('\n')).join('\n---\n');
    await waitUntil('both workers serve /metrics', () => workerUrls.filter(Boolean).length === 2, 60_000);

    // Scrape each worker until it has trained a few steps (every scrape must parse).
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
        coord = await scrape(coordinator!.metricsUrl!);
        const f = coord.families;
        return (
          sampleValue(f, 'bbn_ranks', { run: RUN, status: 'alive' }) === 2 &&
          sampleValue(f, 'bbn_heartbeat_age_seconds', { run: RUN, rank: '1' }) !== undefined
        );
      },
      10_000,
    );
    const cf = coord!.families;
    assert.equal(sampleValue(cf, 'bbn_generation', { run: RUN }), 1);
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

    // Stop in order: SIGINT asks the world to stop after one step; both exit 0.
    for (const c of children) c.proc.kill('SIGINT');
    const codes = await Promise.all(children.map((c) => c.exited));
    assert.deepEqual(codes, [0, 0], fail());

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
    for (const c of children)
      if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
    await Promise.all(children.map((c) => c.exited));
    await coordinator?.close();
    await nc.close();
  }
});
