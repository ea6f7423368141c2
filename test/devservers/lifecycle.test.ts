import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import {
  PROJECT_ROOT,
  ServerExitedError,
  ServerNotReadyError,
  startDevServers,
  startNatsServer,
  startTemporalDevServer,
  TEMPORAL_DB_FILENAME,
} from '../../src/devservers/index.ts';
import { processGone, waitUntil } from '../helpers/servers.ts';

let dir: string;

async function script(name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bbn-lifecycle-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('a server that exits at start fails fast with its exit code and log tail', async () => {
  const crash = await script('crash.sh', 'echo "fatal: cannot open store /x" >&2\nexit 3');
  for (const start of [startNatsServer, startTemporalDevServer]) {
    const t0 = Date.now();
    await assert.rejects(start({ binaryPath: crash, readyTimeoutMs: 20_000 }), (err: Error) => {
      assert.ok(err instanceof ServerExitedError, String(err));
      assert.equal(err.exitCode, 3);
      assert.match(err.logTail, /fatal: cannot open store \/x/);
      return true;
    });
    assert.ok(Date.now() - t0 < 5_000, `waited ${Date.now() - t0} ms for a dead server`);
  }
});

test('a binary that cannot be spawned is reported as an exit naming it', async () => {
  await assert.rejects(startNatsServer({ binaryPath: join(dir, 'no-such-nats-server') }), (err: Error) => {
    assert.ok(err instanceof ServerExitedError, String(err));
    assert.match(err.message, /no-such-nats-server.*ENOENT/);
    return true;
  });
});

test('a server never ready is killed at the deadline, and the error carries its log tail', async () => {
  const hang = await script(
    'hang.sh',
    `echo $$ > "${join(dir, 'hang.pid')}"\necho "warming up forever"\nexec sleep 30`,
  );
  await assert.rejects(startTemporalDevServer({ binaryPath: hang, readyTimeoutMs: 600 }), (err: Error) => {
    assert.ok(err instanceof ServerNotReadyError, String(err));
    assert.equal(err.timeoutMs, 600);
    assert.match(err.message, /warming up forever/);
    return true;
  });
  const pid = Number(await readFile(join(dir, 'hang.pid'), 'utf8'));
  assert.ok(processGone(pid), `hung server ${pid} left running`);
});

test('startDevServers - when one server cannot start, the other is stopped too', async () => {
  const crash = await script('crash-nats.sh', 'echo "nats: bad flag" >&2\nexit 1');
  const dataDir = join(dir, 'pair');
  await assert.rejects(startDevServers({ dataDir, natsBinary: crash }), ServerExitedError);
  // The Temporal server did start: its SQLite file exists, and no process holds it any more.
  assert.ok(existsSync(join(dataDir, 'temporal', TEMPORAL_DB_FILENAME)));
  const holders = await pidsWithOpenFile(join(dataDir, 'temporal', TEMPORAL_DB_FILENAME));
  assert.deepEqual(holders, []);
});

/** Pids that have `file` open (Linux /proc scan); empty where /proc is missing. */
async function pidsWithOpenFile(file: string): Promise<number[]> {
  const out: number[] = [];
  const procs = await readdir('/proc').catch(() => [] as string[]);
  for (const p of procs.filter((x) => /^\d+$/.test(x))) {
    const fds = await readdir(`/proc/${p}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      if ((await readlink(`/proc/${p}/fd/${fd}`).catch(() => '')) === file) {
        out.push(Number(p));
        break;
      }
    }
  }
  return out;
}

/** A separate Node process that starts nats-server, prints its pid and data dir, then exits or waits. */
async function ownerProcess(
  mode: 'exit' | 'wait',
): Promise<{ pid: number; dataDir: string; owner: ChildProcess }> {
  const script = join(dir, `owner-${mode}.mjs`);
  const devservers = pathToFileURL(join(PROJECT_ROOT, 'src/devservers/index.ts')).href;
  await writeFile(
    script,
    `const { startNatsServer } = await import(${JSON.stringify(devservers)});
const s = await startNatsServer();
process.stdout.write(JSON.stringify({ pid: s.pid, dataDir: s.dataDir }) + '\\n');
if (process.argv[2] === 'exit') process.exit(0);
setInterval(() => {}, 1000);
`,
  );
  const owner = spawn(process.execPath, ['--import', 'tsx', script, mode], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      owner.kill('SIGKILL');
      reject(new Error('owner process printed nothing within 20 s'));
    }, 20_000);
    createInterface({ input: owner.stdout! }).once('line', (l) => {
      clearTimeout(timer);
      resolve(l);
    });
    // 'close' comes after all output was read, so it only wins when nothing was printed.
    owner.once('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`owner process ended (${code}) before printing`));
    });
  });
  return { ...(JSON.parse(line) as { pid: number; dataDir: string }), owner };
}

test('the owning process killed by SIGKILL takes its server with it (watchdog)', async () => {
  const { pid, dataDir, owner } = await ownerProcess('wait');
  assert.equal(processGone(pid), false, 'server runs while its owner does');
  owner.kill('SIGKILL');
  await waitUntil(`nats-server ${pid} to end after its owner was killed`, () => processGone(pid), 10_000);
  // No exit hook ran in the owner; the watchdog removes the temp store once the server is gone.
  await waitUntil(`temp store ${dataDir} to be removed`, () => !existsSync(dataDir), 10_000);
});

test('the owning process exiting without stop() kills its server and removes its temp store (exit hook)', async () => {
  const { pid, dataDir, owner } = await ownerProcess('exit');
  await new Promise((r) => (owner.exitCode === null ? owner.once('exit', r) : r(null)));
  await waitUntil(`nats-server ${pid} to end after its owner exited`, () => processGone(pid), 5_000);
  assert.equal(existsSync(dataDir), false, `temp store ${dataDir} left behind`);
});
