/**
 * A rank's health endpoint, served by its main thread (`GET /healthz`): it answers as long as the
 * process is alive and its event loop turns, which is what a supervisor needs to tell a frozen rank
 * (SIGSTOP, a hung host, a main thread stuck in a loop) from a busy one. The model computes on the
 * compute thread, so a long step never delays the answer; the body reports how long ago the compute
 * thread last made progress, for people and for `bbn status`.
 *
 * The local supervisor (`RankProcesses`) probes it every second; on Kubernetes it is the worker
 * pod's liveness probe.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What `/healthz` answers (JSON). */
export interface HealthReport {
  readonly rank: number;
  readonly pid: number;
  /** What the rank is doing: `idle`, `training`, … (free text for people). */
  readonly phase: string;
  readonly epoch: number;
  readonly step: number;
  /** Milliseconds since the compute thread last reported progress (a step, an epoch, a command). */
  readonly progressAgeMs: number;
}

/** The rank's liveness state, updated by the main thread as the compute thread reports. */
export class RankHealth {
  private phase = 'idle';
  private epoch = 0;
  private step = 0;
  private lastProgress = performance.now();

  constructor(readonly rank: number) {}

  /** Records progress (a step done, a command answered). */
  progress(phase: string, epoch = this.epoch, step = this.step): void {
    this.phase = phase;
    this.epoch = epoch;
    this.step = step;
    this.lastProgress = performance.now();
  }

  report(): HealthReport {
    return {
      rank: this.rank,
      pid: process.pid,
      phase: this.phase,
      epoch: this.epoch,
      step: this.step,
      progressAgeMs: Math.round(performance.now() - this.lastProgress),
    };
  }
}

/** A started health endpoint. */
export interface HealthServer {
  /** `http://host:port/healthz`. */
  readonly url: string;
  close(): Promise<void>;
}

/** Serves `health` on `host:port` (port 0: any free one). */
export async function serveHealth(health: RankHealth, port = 0, host = '127.0.0.1'): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/healthz') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /healthz\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(health.report()));
  });
  // A probe must never keep the process alive, nor wait on an idle connection.
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.unref();
  const { port: bound } = server.address() as AddressInfo;
  const shown = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return {
    url: `http://${shown}:${bound}/healthz`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
