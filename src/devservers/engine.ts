/**
 * Does a container engine answer? Asks the Docker API itself (`GET /_ping`), never the `docker`
 * client, which can be installed with no engine behind it.
 */
import { request } from 'node:http';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Result of a probe: which endpoint answered, and every endpoint tried. */
export interface EngineProbe {
  readonly answers: boolean;
  readonly endpoint?: string;
  readonly tried: readonly string[];
}

/** Inputs of the probe; defaults are this process's environment, the usual sockets and 1 s per endpoint. */
export interface EngineProbeOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Sockets tried when DOCKER_HOST is unset. */
  socketPaths?: readonly string[];
}

/** The Docker sockets testcontainers also looks at (rootful, Docker Desktop, rootless). */
export function defaultDockerSockets(env: NodeJS.ProcessEnv = process.env): string[] {
  const paths = ['/var/run/docker.sock', join(homedir(), '.docker', 'run', 'docker.sock')];
  paths.push(join(homedir(), '.docker', 'desktop', 'docker.sock'));
  if (env.XDG_RUNTIME_DIR) paths.push(join(env.XDG_RUNTIME_DIR, 'docker.sock'));
  return paths;
}

type Endpoint = { socketPath: string } | { host: string; port: number };

/** DOCKER_HOST (`unix:///path` or `tcp://host:port`) as an HTTP endpoint; undefined for schemes we cannot ping. */
function parseDockerHost(value: string): Endpoint | undefined {
  if (value.startsWith('unix://')) return { socketPath: value.slice('unix://'.length) };
  if (value.startsWith('tcp://')) {
    const url = new URL(value.replace(/^tcp:/, 'http:'));
    return { host: url.hostname, port: Number(url.port || 2375) };
  }
  return undefined;
}

/** One `GET /_ping`: true only for a 200 within `timeoutMs`. Never rejects. */
function ping(endpoint: Endpoint, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ ...endpoint, path: '/_ping', method: 'GET', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
    req.end();
  });
}

/**
 * Pings the engine at DOCKER_HOST when set (and only there: it is what testcontainers would
 * use), else each default socket in turn; resolves with the first that answers.
 */
export async function probeContainerEngine(opts: EngineProbeOptions = {}): Promise<EngineProbe> {
  const env = opts.env ?? process.env;
  const timeoutMs = opts.timeoutMs ?? 1_000;
  const endpoints: Array<[string, Endpoint]> = [];
  if (env.DOCKER_HOST) {
    const ep = parseDockerHost(env.DOCKER_HOST);
    if (!ep) return { answers: false, tried: [`DOCKER_HOST=${env.DOCKER_HOST} (unsupported scheme)`] };
    endpoints.push([env.DOCKER_HOST, ep]);
  } else {
    for (const p of opts.socketPaths ?? defaultDockerSockets(env))
      endpoints.push([`unix://${p}`, { socketPath: p }]);
  }
  const tried: string[] = [];
  for (const [name, ep] of endpoints) {
    tried.push(name);
    if (await ping(ep, timeoutMs)) return { answers: true, endpoint: name, tried };
  }
  return { answers: false, tried };
}
