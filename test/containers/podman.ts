/**
 * The podman CLI for the container tests: one command at a time (with the engine config that
 * scripts/setup-containers.sh wrote), and containers whose output lines a test can wait on.
 * Everything a test makes carries the label bbn.test=containers, which
 * `scripts/setup-containers.sh stop` removes if a killed test run left it behind.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { bbnCacheDir } from '../../src/devservers/index.ts';

/** The label on every container, network and volume these tests make. */
export const TEST_LABEL = 'bbn.test=containers';

/** The environment podman runs with: the set-up's containers.conf unless CONTAINERS_CONF is set. */
export function podmanEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (env.CONTAINERS_CONF) return env;
  const conf = join(bbnCacheDir(env), 'containers', 'containers.conf');
  if (!existsSync(conf))
    throw new Error(
      `no ${conf}: run \`bash scripts/setup-containers.sh\` first (the container tests need podman)`,
    );
  return { ...env, CONTAINERS_CONF: conf };
}

/** Runs `podman ARGS`; resolves with stdout (trimmed), rejects with podman's stderr. */
export function podman(args: readonly string[], timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'podman',
      args,
      { env: podmanEnv(), timeout: timeoutMs, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err)
          reject(new Error(`podman ${args.slice(0, 3).join(' ')}… failed: ${stderr.trim() || err.message}`));
        else resolve(stdout.trim());
      },
    );
  });
}

/** A detached container and the lines it has printed so far (stdout and stderr). */
export interface Followed {
  readonly name: string;
  readonly lines: string[];
  /** Resolves with the container's exit code once it ends (killed: 137; already removed: -1). */
  readonly exited: Promise<number>;
}

/** `podman run -d ARGS`, then follows its output; `--name` must be among `args`. */
export async function runFollowed(args: readonly string[]): Promise<Followed> {
  const i = args.indexOf('--name');
  if (i < 0) throw new Error('runFollowed needs --name');
  const name = args[i + 1];
  await podman(['run', '-d', '--label', TEST_LABEL, ...args]);
  const lines: string[] = [];
  const child: ChildProcess = spawn('podman', ['logs', '-f', name], {
    env: podmanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream?.on('data', (d: Buffer) => {
      partial += d.toString();
      const parts = partial.split(/\r|\n/);
      partial = parts.pop() ?? '';
      lines.push(...parts.filter((l) => l.length > 0));
    });
  }
  // Never rejects: a container removed before anyone asked (test clean-up) reads as -1.
  const exited = new Promise<void>((r) => child.once('close', () => r())).then(async () =>
    Number(await podman(['wait', name]).catch(() => '-1')),
  );
  return { name, lines, exited };
}

/** Host path of a named volume (the tests run as root, next to the engine). */
export async function volumePath(volume: string): Promise<string> {
  return podman(['volume', 'inspect', '--format', '{{.Mountpoint}}', volume]);
}

/** Removes every container, network and volume with {@link TEST_LABEL}; never throws. */
export async function removeTestObjects(): Promise<void> {
  const ids = async (what: string[]) =>
    (await podman([...what, '--filter', `label=${TEST_LABEL}`]).catch(() => '')).split('\n').filter(Boolean);
  const containers = await ids(['ps', '-aq']);
  if (containers.length) await podman(['rm', '-f', '-t', '0', ...containers]).catch(() => {});
  const networks = await ids(['network', 'ls', '-q']);
  if (networks.length) await podman(['network', 'rm', '-f', ...networks]).catch(() => {});
  const volumes = await ids(['volume', 'ls', '-q']);
  if (volumes.length) await podman(['volume', 'rm', '-f', ...volumes]).catch(() => {});
}
