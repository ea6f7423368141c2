/**
 * The fixture of suites that drive real `bbn` processes against one test Temporal server: before
 * the suite, the server and the tiny config on disk; after it, every child still running
 * SIGKILLed, the server stopped and the temporary directories removed.
 */
import type { ChildProcess } from 'node:child_process';
import { after, before } from 'node:test';
import { removeTempDirs, writeTinyConfig } from '../distributed/fixtures.ts';
import { type BbnProcess, bbnProcess } from './bbn-process.ts';
import { startTestTemporal, type TestServer } from './servers.ts';

/** What a suite uses (read `server` and `configPath` inside its tests, after the hooks ran). */
export interface ProcessSuite {
  readonly server: TestServer;
  readonly configPath: string;
  /** Every process started (by `bbn` or by the test), killed after the suite if still running. */
  readonly children: ChildProcess[];
  /** Starts `bbn …` as a child of the suite (see bbnProcess). */
  bbn(args: string[], onLine?: (line: string) => void, env?: NodeJS.ProcessEnv): BbnProcess;
}

/** Registers the suite's before/after hooks and returns its fixture. */
export function processSuite(): ProcessSuite {
  let server: TestServer | undefined;
  let configPath = '';
  const children: ChildProcess[] = [];
  before(async () => {
    server = await startTestTemporal();
    configPath = writeTinyConfig();
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await server?.stop();
    removeTempDirs();
  });
  return {
    get server() {
      if (!server) throw new Error('processSuite: the server is read before the suite started');
      return server;
    },
    get configPath() {
      return configPath;
    },
    children,
    bbn: (args, onLine, env) => bbnProcess(args, children, onLine, env),
  };
}
