/**
 * Contracts of the local dev servers: what a started server looks like, how it is configured, and
 * the errors starting one can raise. Implementations live beside this file.
 */

/** The two servers the project runs for real: the Temporal dev server and nats-server. */
export type ServerName = 'temporal' | 'nats';

/** A server process this module started; `stop()` is the only way it should end. */
export interface LocalServer {
  readonly name: ServerName;
  /** What a client dials: `host:port` for Temporal, `nats://host:port` for NATS. */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** Where the server keeps its state (Temporal's SQLite file, NATS's JetStream store). */
  readonly dataDir: string;
  readonly pid: number;
  readonly binaryPath: string;
  /** The last lines the server wrote to stdout/stderr. */
  logTail(): string;
  /**
   * Ends the server (SIGTERM, then SIGKILL after the grace time) and resolves once the process
   * is gone and its port is free; removes the data dir when this module created it. Idempotent.
   */
  stop(): Promise<void>;
}

/** Options shared by both servers; every field has a working default. */
export interface LocalServerOptions {
  /** The server binary; default: {@link resolveServerBinary}, which throws when none is found. */
  binaryPath?: string;
  /** State directory. Given: kept on stop, so a restart sees the same state. Default: a temp dir, removed on stop. */
  dataDir?: string;
  /** Loopback by default so a dev server is never reachable from the network. */
  host?: string;
  /** Client port; default: a free port chosen at start. */
  port?: number;
  /** Bound on the wait for the health check to pass (ms). */
  readyTimeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL on stop (ms). */
  stopGraceMs?: number;
}

/** Temporal dev server options. */
export interface TemporalDevServerOptions extends LocalServerOptions {
  /** Namespace the health check describes (the dev server always creates `default`). */
  namespace?: string;
}

/** Base of this module's errors. `userFacing` lets the CLI print the message as one line. */
export class DevServerError extends Error {
  readonly userFacing = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DevServerError';
  }
}

/** No usable binary for a server; the message says what was tried and how to install one. */
export class ServerBinaryNotFoundError extends DevServerError {
  constructor(
    readonly server: ServerName,
    readonly tried: readonly string[],
    hint: string,
  ) {
    super(`no ${server} binary found (tried: ${tried.join(', ') || 'nothing'}); ${hint}`);
    this.name = 'ServerBinaryNotFoundError';
  }
}

/** The server process ended before its health check passed. */
export class ServerExitedError extends DevServerError {
  constructor(
    readonly server: ServerName,
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly logTail: string,
  ) {
    super(
      `${server} server exited before it was ready (code ${exitCode}, signal ${signal}); last log lines:\n${logTail}`,
    );
    this.name = 'ServerExitedError';
  }
}

/** The health check did not pass within the deadline; the server has been stopped. */
export class ServerNotReadyError extends DevServerError {
  constructor(
    readonly server: ServerName,
    readonly address: string,
    readonly timeoutMs: number,
    readonly logTail: string,
    cause?: unknown,
  ) {
    const why = cause instanceof Error ? ` (last probe: ${cause.message})` : '';
    super(
      `${server} server at ${address} not ready within ${timeoutMs} ms${why}; last log lines:\n${logTail || '(no output)'}`,
      { cause },
    );
    this.name = 'ServerNotReadyError';
  }
}

/** The server runs but is a version we cannot use (e.g. nats-server without per-message TTL). */
export class ServerVersionError extends DevServerError {
  constructor(
    readonly server: ServerName,
    readonly binaryPath: string,
    readonly version: string,
    readonly minimum: string,
    hint: string,
  ) {
    super(`${server} at ${binaryPath} is version ${version}, need >= ${minimum}; ${hint}`);
    this.name = 'ServerVersionError';
  }
}

/** No way to get a server for tests: no address given, no container engine, no binary. */
export class ServerUnavailableError extends DevServerError {
  constructor(
    readonly server: ServerName,
    message: string,
  ) {
    super(message);
    this.name = 'ServerUnavailableError';
  }
}
