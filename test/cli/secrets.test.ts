/**
 * The run token never leaves the processes that use it. A real `bbn train --workers 2` (the
 * Temporal default, two rank processes authenticating their ring edges with the token given in
 * BBN_RUN_TOKEN) is held still by the checkpoint fault point at its last checkpoint (a latch), and
 * there every place a secret could leak is read: both ranks' Prometheus /metrics, the live
 * workflow's `bbn status`, every NATS message of the run so far. Then it is killed, resumed to
 * the end, reported, and the whole run directory (config.yaml, metrics, summary, run.json,
 * checkpoints, temporal.log, the Temporal server's SQLite history), both runs' output and the
 * HTML report are searched for the token too. None may hold it.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from 'nats';
import { stringify } from 'yaml';
import { RunToken } from '../../src/auth/run-token.ts';
import { tempDir } from '../helpers/run-fixture.ts';
import { startTestNats, type TestServer } from '../helpers/servers.ts';
import { tinyRun } from '../helpers/tiny.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'bbn.mjs');
const token = RunToken.generate().reveal();
let nats: TestServer;
let nc: NatsConnection;
const messages: string[] = [];

function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  for (const k of Object.keys(env))
    if (k.startsWith('BBN_TEMPORAL') || k.startsWith('TEMPORAL_')) delete env[k];
  return env;
}

before(async () => {
  nats = await startTestNats();
  nc = await connect({ servers: nats.address });
  const sub = nc.subscribe('>');
  void (async () => {
    for await (const m of sub) messages.push(`${m.subject} ${Buffer.from(m.data).toString('latin1')}`);
  })();
});

after(async () => {
  await nc?.close();
  await nats?.stop();
});

/** Every file under `dir`, as latin1 text (binary files too: a secret is ASCII). */
function filesUnder(dir: string): [string, string][] {
  const out: [string, string][] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push([p, readFileSync(p).toString('latin1')]);
  }
  return out;
}

describe('secrets stay secret', () => {
  it('the run token is in no log, metric, event, status, report, config or file of a W=2 run', {
    timeout: 420_000,
  }, async () => {
    const root = tempDir('bbn-secrets-');
    const configPath = join(root, 'tiny.yaml');
    writeFileSync(configPath, stringify(tinyRun({ name: 'secrets', train: { epochs: 2 } })));
    const out = join(root, 'run');
    const seen: [string, string][] = [];

    // 1. Train until rank 0 is paused in its last checkpoint write; read the live surfaces there.
    const child = spawn(
      process.execPath,
      [
        BIN,
        'train',
        '-c',
        configPath,
        '-o',
        out,
        '--workers',
        '2',
        '--nats',
        nats.address,
        '--metrics-port',
        '0',
      ],
      {
        cwd: ROOT,
        env: userEnv({ BBN_RUN_TOKEN: token, BBN_FAULT_PAUSE_CHECKPOINT_WRITE: '2' }),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let text = '';
    const live = await new Promise<{ temporal: string; metrics: string[] }>((resolve, reject) => {
      const metrics = new Set<string>();
      let temporal = '';
      let paused = false;
      const onData = (d: Buffer) => {
        text += d;
        temporal ||= /temporal: dev server on (\S+)/.exec(text)?.[1] ?? '';
        for (const m of text.matchAll(/rank \d: metrics at (http\S+)/g)) metrics.add(m[1]);
        paused ||= text.includes('bbn-fault: checkpoint write paused');
        if (paused && temporal && metrics.size === 2) resolve({ temporal, metrics: [...metrics] });
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('close', () => reject(new Error(`bbn train ended before its checkpoint pause:\n${text}`)));
    });
    for (const url of live.metrics) {
      const res = await fetch(`${url.replace(/\/metrics$/, '')}/metrics`);
      assert.equal(res.status, 200);
      seen.push([`metrics ${url}`, await res.text()]);
    }
    const status = spawnSync(
      process.execPath,
      [BIN, 'status', 'run', '--temporal', live.temporal, '--json'],
      {
        cwd: ROOT,
        env: userEnv(),
        encoding: 'utf8',
      },
    );
    assert.equal(status.status, 0, status.stderr);
    seen.push(['bbn status --json', status.stdout + status.stderr]);
    const killed = new Promise((r) => child.once('close', r));
    child.kill('SIGKILL');
    await killed;
    seen.push(['first bbn train output', text]);

    // 2. Resume to the end (the same token), report.
    const resumed = spawnSync(
      process.execPath,
      [BIN, 'train', '--resume', out, '--workers', '2', '--nats', nats.address],
      { cwd: ROOT, env: userEnv({ BBN_RUN_TOKEN: token }), encoding: 'utf8', timeout: 300_000 },
    );
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stdout, /secrets \(bbn\) last\s+2 /);
    seen.push(['resumed bbn train output', resumed.stdout + resumed.stderr]);
    const html = join(root, 'report.html');
    const report = spawnSync(process.execPath, [BIN, 'report', out, '--html', html, '--no-png'], {
      cwd: ROOT,
      env: userEnv(),
      encoding: 'utf8',
    });
    assert.equal(report.status, 0, report.stderr);
    seen.push(['bbn report', report.stdout + report.stderr], [html, readFileSync(html, 'latin1')]);
    await nc.flush();
    seen.push(...messages.map((m, i): [string, string] => [`NATS message ${i}`, m]));
    seen.push(...filesUnder(out));

    // 3. What was looked at, and that none of it holds the token.
    const names = seen.map(([where]) => where);
    for (const must of [
      'config.yaml',
      'metrics.jsonl',
      'summary.json',
      'run.json',
      'temporal.log',
      'temporal.sqlite',
    ])
      assert.ok(
        names.some((n) => n.endsWith(must)),
        `looked at ${must}`,
      );
    assert.ok(messages.length > 0, 'the run published events');
    assert.ok(
      seen.some(([w, t]) => w.startsWith('metrics') && /bbn_/.test(t)),
      'metrics were scraped',
    );
    const leaks = seen.filter(([, t]) => t.includes(token)).map(([w]) => w);
    assert.deepEqual(leaks, [], 'the token appears nowhere');
  });
});
