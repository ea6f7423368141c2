/**
 * `bbn …` as a child process, as users run it (bin/bbn.mjs, no Temporal or NATS variables from the
 * test's environment), with its output lines as they come and its exit.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'bbn.mjs');

/** A started `bbn` process. */
export interface Proc {
  readonly child: ChildProcess;
  readonly done: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** Starts `bbn …` (no Temporal variables; `extraEnv` added); `onLine` sees its output lines as they come. */
export function bbn(args: string[], onLine?: (line: string) => void, extraEnv: NodeJS.ProcessEnv = {}): Proc {
  const env = { ...process.env };
  for (const k of Object.keys(env))
    if (k.startsWith('BBN_TEMPORAL') || k.startsWith('TEMPORAL_') || k === 'NATS_URL') delete env[k];
  Object.assign(env, extraEnv);
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env });
  const text = { stdout: '', stderr: '' };
  for (const stream of ['stdout', 'stderr'] as const) {
    let partial = '';
    child[stream]?.on('data', (d: Buffer) => {
      text[stream] += d;
      partial += d;
      const lines = partial.split(/\r|\n/);
      partial = lines.pop() ?? '';
      for (const line of lines) onLine?.(line);
    });
  }
  // A backstop against a hung child only (the assertions wait on events, not on this timer).
  const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, ...text });
    }),
  );
  return { child, done };
}
