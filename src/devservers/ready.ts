/**
 * Health checks with a bounded deadline: a real client call against each server, retried until it
 * passes, the deadline passes, or the caller aborts (e.g. because the server process died).
 */
import { type ServerName, ServerNotReadyError } from './api.ts';

/** Options of a readiness wait. */
export interface WaitReadyOptions {
  /** Overall bound (ms). */
  timeoutMs?: number;
  /** Pause between failed probes (ms). */
  intervalMs?: number;
  /** Abort the wait; it rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Server output to put in the timeout error. */
  logTail?: () => string;
}

/** Upper bound of one probe, so a probe that hangs cannot eat the whole deadline. */
const ATTEMPT_MS = 2_000;

/** Rejects with the abort reason as soon as `signal` aborts, whatever `work` is doing. */
function raceAbort<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) {
    work.catch(() => {}); // nobody awaits it any more; its failure must not be unhandled
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return raceAbort(
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      signal?.addEventListener('abort', () => clearTimeout(t), { once: true });
    }),
    signal,
  );
}

/** Runs `probe` until it resolves; throws {@link ServerNotReadyError} with the last probe error at the deadline. */
async function pollReady<T>(
  server: ServerName,
  address: string,
  probe: (attemptMs: number) => Promise<T>,
  opts: WaitReadyOptions,
  defaultTimeoutMs: number,
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? defaultTimeoutMs;
  const intervalMs = opts.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw new ServerNotReadyError(server, address, timeoutMs, opts.logTail?.() ?? '', lastError);
    }
    if (opts.signal?.aborted) throw opts.signal.reason;
    try {
      return await raceAbort(probe(Math.min(ATTEMPT_MS, remaining)), opts.signal);
    } catch (err) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      lastError = err;
    }
    await pause(Math.max(0, Math.min(intervalMs, deadline - Date.now())), opts.signal);
  }
}

/**
 * Waits until a Temporal frontend at `address` (`host:port`) answers `getSystemInfo` and
 * `describeNamespace(namespace)` over gRPC. Default bound: 30 s.
 */
export async function waitForTemporal(
  address: string,
  opts: WaitReadyOptions & { namespace?: string } = {},
): Promise<void> {
  const { Connection } = await import('@temporalio/client');
  const namespace = opts.namespace ?? 'default';
  await pollReady(
    'temporal',
    address,
    async (attemptMs) => {
      // lazy + ensureConnected so the channel is closed on failure too (connect() would leak it).
      const conn = Connection.lazy({ address, connectTimeout: attemptMs });
      try {
        await conn.ensureConnected();
        await conn.withDeadline(Date.now() + attemptMs, () =>
          conn.workflowService.describeNamespace({ namespace }),
        );
      } finally {
        await conn.close();
      }
    },
    opts,
    30_000,
  );
}

/**
 * Waits until a NATS server at `url` accepts a client connection with JetStream enabled.
 * Resolves with the server's version. Default bound: 10 s.
 */
export async function waitForNats(url: string, opts: WaitReadyOptions = {}): Promise<{ version: string }> {
  const { connect } = await import('nats');
  return pollReady(
    'nats',
    url,
    async (attemptMs) => {
      const nc = await connect({ servers: url, timeout: attemptMs, reconnect: false });
      try {
        // Fails unless JetStream is enabled: the account-info request has no responder otherwise.
        await nc.jetstreamManager({ timeout: attemptMs });
        return { version: nc.info?.version ?? '0.0.0' };
      } finally {
        await nc.close();
      }
    },
    opts,
    10_000,
  );
}

/** Numeric comparison of dotted versions (`2.15.1` vs `2.11.0`); -1, 0 or 1. Pre-release tails are ignored. */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string): number[] =>
    v
      .replace(/^v/, '')
      .split(/[-+]/)[0]!
      .split('.')
      .map((x) => Number.parseInt(x, 10) || 0);
  const pa = parse(a);
  const pb = parse(b);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}
