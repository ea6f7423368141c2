/**
 * The one place tests get a real Temporal or NATS server from. The decision is
 * `chooseServerSource` (pure, in src/devservers): an address in TEMPORAL_ADDRESS / NATS_URL, else a
 * testcontainers container when containers are asked for, else the local binary on free loopback
 * ports with a temporary store. Every path returns a {@link TestServer} to stop.
 *
 * Containers only when asked: BBN_TEST_CONTAINERS=1 (set by `npm run test:containers`, through
 * scripts/setup-containers.sh). Then an engine must answer, or the helper fails: a container run
 * never quietly falls back to binaries. Without it the engine is not even probed, so `npm test`
 * runs the same way whether or not a container engine happens to be up on the machine.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import {
  chooseServerSource,
  findServerBinary,
  freePort,
  probeContainerEngine,
  resolveServerBinary,
  SERVER_ADDRESS_ENV,
  type ServerName,
  type ServerSource,
  startNatsServer,
  startTemporalDevServer,
  waitForNats,
  waitForTemporal,
} from '../../src/devservers/index.ts';

/** A server a test may use; `stop()` ends what the helper started (nothing for an env address). */
export interface TestServer {
  readonly server: ServerName;
  /** `host:port` for Temporal, `nats://host:port` for NATS. */
  readonly address: string;
  readonly source: Exclude<ServerSource['kind'], 'unavailable'>;
  stop(): Promise<void>;
}

/** Injection points for the helper's own tests; defaults read this process's environment. */
export interface TestServerOptions {
  env?: NodeJS.ProcessEnv;
  /** Skip the probe and use this answer. */
  engineAnswers?: boolean;
  /** Bound on readiness (ms); containers get extra time for the image pull. */
  readyTimeoutMs?: number;
}

const CONTAINER_PORTS: Readonly<Record<ServerName, number>> = { temporal: 7233, nats: 4222 };

/** True when this test run asked for containers (BBN_TEST_CONTAINERS=1). */
export function containersRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.BBN_TEST_CONTAINERS === '1';
}

async function engineAnswers(opts: TestServerOptions, env: NodeJS.ProcessEnv): Promise<boolean> {
  if (opts.engineAnswers !== undefined) return opts.engineAnswers;
  if (!containersRequested(env)) return false;
  // Asked for, so only confirmed: a generous timeout (a busy engine, e.g. mid image build, can
  // take seconds to answer its ping).
  const probe = await probeContainerEngine({ env, timeoutMs: 10_000 });
  if (!probe.answers)
    throw new Error(
      `BBN_TEST_CONTAINERS=1 but no container engine answered (tried ${probe.tried.join(', ')}): ` +
        'run `bash scripts/setup-containers.sh`, or unset BBN_TEST_CONTAINERS to use local binaries',
    );
  return true;
}

function waitFor(server: ServerName, address: string, timeoutMs: number | undefined): Promise<unknown> {
  return server === 'temporal'
    ? waitForTemporal(address, { timeoutMs })
    : waitForNats(address, { timeoutMs });
}

/** Starts a container for `server` (testcontainers is imported only here, only when an engine answered). */
async function startContainer(
  server: ServerName,
  image: string,
  readyTimeoutMs: number,
): Promise<TestServer> {
  const { GenericContainer } = await import('testcontainers');
  const command =
    server === 'temporal'
      ? ['server', 'start-dev', '--headless', '--ip', '0.0.0.0']
      : ['-js', '-a', '0.0.0.0'];
  const inner = CONTAINER_PORTS[server];
  const container = await new GenericContainer(image)
    .withCommand(command)
    .withExposedPorts(inner)
    .withLabels({ 'bbn.test': 'containers' })
    .withStartupTimeout(readyTimeoutMs)
    .start();
  const hostPort = `${container.getHost()}:${container.getMappedPort(inner)}`;
  const address = server === 'nats' ? `nats://${hostPort}` : hostPort;
  try {
    await waitFor(server, address, readyTimeoutMs);
  } catch (err) {
    await container.stop();
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return {
    server,
    address,
    source: 'container',
    stop: () => {
      stopped ??= container.stop().then(() => undefined);
      return stopped;
    },
  };
}

/** A running `server` for a test, from wherever {@link chooseServerSource} says. */
export async function startTestServer(server: ServerName, opts: TestServerOptions = {}): Promise<TestServer> {
  const env = opts.env ?? process.env;
  const envAddress = env[SERVER_ADDRESS_ENV[server]];
  const answers = envAddress?.trim() ? false : await engineAnswers(opts, env);
  const binaryPath = findServerBinary(server, { env })?.path;
  const source = chooseServerSource({ server, envAddress, engineAnswers: answers, binaryPath });
  switch (source.kind) {
    case 'unavailable':
      throw source.error;
    case 'env':
      // Fail here, with the variable's name, rather than in the middle of a test.
      await waitFor(server, source.address, opts.readyTimeoutMs ?? 10_000).catch((err: unknown) => {
        throw new Error(`${source.envVar}=${source.address} does not answer: ${(err as Error).message}`, {
          cause: err,
        });
      });
      return { server, address: source.address, source: 'env', stop: async () => {} };
    case 'container':
      return startContainer(server, source.image, opts.readyTimeoutMs ?? 120_000);
    case 'local': {
      const start = server === 'temporal' ? startTemporalDevServer : startNatsServer;
      const local = await start({ binaryPath: source.binaryPath, readyTimeoutMs: opts.readyTimeoutMs });
      return { server, address: local.address, source: 'local', stop: () => local.stop() };
    }
  }
}

/** A Temporal frontend (`host:port`) for a test. */
export function startTestTemporal(opts: TestServerOptions = {}): Promise<TestServer> {
  return startTestServer('temporal', opts);
}

/** A NATS server with JetStream (`nats://host:port`) for a test. */
export function startTestNats(opts: TestServerOptions = {}): Promise<TestServer> {
  return startTestServer('nats', opts);
}

/**
 * A bare nats-server on a free loopback port with `flags` (auth, TLS, no JetStream: what the dev
 * servers do not start), ready to accept connections; the caller SIGKILLs it.
 */
export async function spawnNatsServer(flags: string[] = []): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(resolveServerBinary('nats'), ['-a', '127.0.0.1', '-p', String(port), ...flags], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let text = '';
    child.stderr?.on('data', (d: Buffer) => {
      text += d;
      if (text.includes('Server is ready')) resolve();
    });
    child.on('exit', () => reject(new Error(`nats-server exited:\n${text}`)));
  });
  return { url: `nats://127.0.0.1:${port}`, child };
}

/**
 * True when `pid` no longer runs. A zombie counts as gone: once its parent died, reaping it is
 * init's job, and some container inits never do.
 */
export function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    if (existsSync('/proc/self/stat')) return true;
    try {
      process.kill(pid, 0); // no /proc (macOS): signal 0 tells whether the pid exists
      return false;
    } catch {
      return true;
    }
  }
}

/** True when nothing listens on `host:port` (the dev servers' own probe). */
export { portIsFree } from '../../src/devservers/index.ts';

/** Polls `cond` every 50 ms until true; throws naming `what` after `timeoutMs`. */
export async function waitUntil(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
