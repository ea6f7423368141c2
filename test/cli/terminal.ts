/**
 * Ctrl-C in a real terminal. `bbn train` runs in a tmux pane (a real TTY, the shell's foreground
 * process group), and `tmux send-keys C-c` makes the terminal driver send SIGINT to that whole
 * group, as a user's Ctrl-C does, unlike `kill -INT` of the bbn process alone. The run must stop
 * cleanly with a checkpoint within seconds (its Temporal dev server and rank processes, in process
 * groups of their own, survive the keystroke until bbn stops them), exit 130, leave no process
 * behind, and `bbn train --resume` must finish it. `terminal.test.ts` runs it with the in-process
 * trainer (in `npm test`), `terminal-workers.slow.ts` with `--workers 2` rank processes.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { listCheckpoints } from '../../src/worker/checkpoint.ts';
import { readMetrics, runPaths } from '../../src/worker/run-dir.ts';
import { BIN, ROOT } from '../helpers/cli-timing.ts';
import { waitUntil } from '../helpers/servers.ts';
import { tinyRun } from '../helpers/tiny.ts';

const hasTmux = spawnSync('tmux', ['-V']).status === 0;
const dir = mkdtempSync(join(tmpdir(), 'bbn-terminal-'));
const configPath = join(dir, 'tiny.yaml');
const socket = `bbn-test-${process.pid}`;
/** Ctrl-C to exit: a step, a step checkpoint and the shutdown, on a busy 2-core host. */
const STOP_BOUND_S = 20;

/** The environment of a user's shell: no Temporal address, so bbn starts its own dev server. */
function userEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env))
    if (k.startsWith('BBN_TEMPORAL') || k.startsWith('TEMPORAL_')) delete env[k];
  return env;
}

const tmux = (...args: string[]) =>
  execFileSync('tmux', ['-L', socket, ...args], { env: userEnv(), encoding: 'utf8' });

/** Processes (other than us) whose command line mentions `text`. */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmd.includes(text)) found.push(`${pid}: ${cmd}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function bbnResume(out: string, extra: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'train', '--resume', out, ...extra], {
      cwd: ROOT,
      env: userEnv(),
    });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    child.on('close', (code) => resolve({ code, output }));
  });
}

async function ctrlCThenResume(name: string, extra: string[]): Promise<void> {
  const out = join(dir, name);
  const exitFile = join(dir, `${name}.exit`);
  const command = [process.execPath, BIN, 'train', '-c', configPath, '-o', out, ...extra].join(' ');
  // The pane's shell runs bbn in the foreground, then records its exit status.
  tmux(
    'new-session',
    '-d',
    '-s',
    name,
    '-x',
    '200',
    '-y',
    '50',
    '-c',
    ROOT,
    `${command}; echo $? > ${exitFile}`,
  );
  tmux('set-option', '-t', name, 'remain-on-exit', 'on');
  await waitUntil('the first epoch', () => readMetrics(out).length >= 1, 180_000);
  const t0 = performance.now();
  tmux('send-keys', '-t', name, 'C-c');
  await waitUntil(
    'bbn to exit',
    () => existsSync(exitFile) && readFileSync(exitFile, 'utf8').trim() !== '',
    60_000,
  );
  const stopSeconds = (performance.now() - t0) / 1000;
  const screen = tmux('capture-pane', '-p', '-J', '-t', name, '-S', '-1000');
  tmux('kill-session', '-t', name);

  assert.equal(
    readFileSync(exitFile, 'utf8').trim(),
    '130',
    `exit status of a Ctrl-C'd run; screen:\n${screen}`,
  );
  assert.ok(
    stopSeconds < STOP_BOUND_S,
    `stopped ${stopSeconds.toFixed(1)} s after Ctrl-C; screen:\n${screen}`,
  );
  assert.match(screen, /stopped; checkpoint .*ckpt-/, screen);
  assert.match(screen, /resume with: bbn train --resume /, screen);
  assert.doesNotMatch(
    screen,
    /UNAVAILABLE|tcp connect error|could not stop run|restarting it|IllegalStateError/,
    screen,
  );
  const rows = readMetrics(out).length;
  assert.ok(rows >= 1 && rows < 3, `stopped mid-run (${rows} epochs recorded)`);
  assert.ok(listCheckpoints(runPaths(out).checkpoints).length > 0, 'a checkpoint to resume from');
  // The dev server (its database is in the run directory) and every rank process are gone.
  await waitUntil('its processes to end', () => processesMentioning(out).length === 0, 10_000).catch(() => {
    assert.fail(`left behind:\n${processesMentioning(out).join('\n')}`);
  });

  const resumed = await bbnResume(out, extra);
  assert.equal(resumed.code, 0, resumed.output);
  assert.deepEqual(
    readMetrics(out).map((m) => m.epoch),
    [1, 2, 3],
  );
  assert.ok(existsSync(runPaths(out).summary));
}

/** The scenario as a suite: `bbn train` with `extra` flags, interrupted by Ctrl-C, then resumed. */
export function describeCtrlC(title: string, name: string, extra: string[]): void {
  describe('Ctrl-C in a terminal (tmux)', {
    skip: hasTmux ? false : 'tmux is not installed (apt-get install tmux)',
  }, () => {
    before(() => {
      // 600 images, 37 steps an epoch: long enough to interrupt mid-epoch.
      writeFileSync(
        configPath,
        stringify(tinyRun({ name: 'tty-tiny', dataset: { perClass: 320 }, train: { epochs: 3 } })),
      );
    });

    after(() => {
      if (hasTmux) spawnSync('tmux', ['-L', socket, 'kill-server']);
      rmSync(dir, { recursive: true, force: true });
    });

    it(title, { timeout: 600_000 }, () => ctrlCThenResume(name, extra));
  });
}
