/**
 * A real `bbn …` process (bin/bbn.mjs) for tests that drive the CLI as a user or a pod would: its
 * output collected line by line (`\r` and `\n` both end a line, so progress bars split), each line
 * also handed to `onLine`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'bbn.mjs');

/** A started `bbn` process. */
export interface BbnProcess {
  readonly child: ChildProcess;
  readonly lines: string[];
  readonly exited: Promise<number | null>;
}

/** Starts `bbn …` (with `env`, default this process's) and adds it to `children` (for the test's cleanup). */
export function bbnProcess(
  args: string[],
  children: ChildProcess[],
  onLine: (line: string) => void = () => {},
  env: NodeJS.ProcessEnv = process.env,
): BbnProcess {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env });
  children.push(child);
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream.on('data', (d: Buffer) => {
      partial += d;
      const parts = partial.split(/\r|\n/);
      partial = parts.pop() ?? '';
      for (const p of parts) {
        lines.push(p);
        onLine(p);
      }
    });
  }
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, lines, exited };
}
