/**
 * The processes of the chaos loop, in the Helm chart's layout on loopback: the Temporal dev server
 * and nats-server (each on a fixed port and a state directory the harness keeps, so a server
 * SIGKILLed is started again on the same state, as its pod would be), the `bbn train
 * --external-workers` coordinator (the coordinator Deployment's pod) and one `bbn worker --temporal
 * --coordinator` process per rank (the StatefulSet's pods). The harness plays the kubelet: a pod
 * whose process ends is started again with the same command at once, and a pod scaled away is
 * ended with SIGTERM. It does not play a liveness probe on its own: the loop kills a SIGSTOPped
 * rank once the run's status names it lost (as test/cli/cluster-liveness.test.ts does).
 */
import type { ChildProcess } from 'node:child_process';
import {
  findServerBinary,
  type LocalServer,
  startNatsServer,
  startTemporalDevServer,
} from '../../src/devservers/index.ts';
import { type BbnProcess, bbnProcess } from '../helpers/bbn-process.ts';

/** A server the harness owns: SIGKILL it, start it again on the same port and state. */
export class RestartableServer {
  private constructor(
    private readonly kind: 'temporal' | 'nats',
    private readonly dataDir: string,
    private server: LocalServer,
  ) {}

  /** Starts `kind` on a free port with its state in `dataDir` (kept across restarts). */
  static async start(kind: 'temporal' | 'nats', dataDir: string): Promise<RestartableServer> {
    const server = await RestartableServer.launch(kind, dataDir);
    return new RestartableServer(kind, dataDir, server);
  }

  private static launch(kind: 'temporal' | 'nats', dataDir: string, port?: number): Promise<LocalServer> {
    const binaryPath = findServerBinary(kind)?.path;
    const start = kind === 'temporal' ? startTemporalDevServer : startNatsServer;
    return start({ binaryPath, dataDir, port });
  }

  get address(): string {
    return this.server.address;
  }

  /**
   * SIGKILLs the server; resolves once the process is gone and its port is free (what the kubelet
   * sees before it restarts the container), with the ms that took.
   */
  async kill(): Promise<number> {
    const t0 = performance.now();
    process.kill(this.server.pid, 'SIGKILL');
    await this.server.stop(); // a dead process: only waits for the exit and the port
    return performance.now() - t0;
  }

  /** Starts the server again on the same port and state; resolves once it answers. */
  async restart(): Promise<void> {
    this.server = await RestartableServer.launch(this.kind, this.dataDir, this.server.port);
  }

  stop(): Promise<void> {
    return this.server.stop();
  }
}

/** A pod: a `bbn …` process started again with the same command whenever it ends, until retired. */
export class Pod {
  private proc: BbnProcess;
  private retired = false;
  /** Resolves each time the current process has exited (and before the next one starts). */
  private exitWaiters: (() => void)[] = [];
  /** Processes started for this pod (1 + restarts). */
  starts = 1;

  constructor(
    readonly name: string,
    private readonly args: readonly string[],
    private readonly children: ChildProcess[],
    private readonly env: NodeJS.ProcessEnv,
    private readonly onLine: (line: string) => void = () => {},
  ) {
    this.proc = this.spawn();
  }

  private spawn(): BbnProcess {
    const p = bbnProcess([...this.args], this.children, this.onLine, this.env);
    p.exited.then(() => {
      for (const w of this.exitWaiters.splice(0)) w();
      if (this.retired) return;
      this.starts++;
      this.proc = this.spawn();
    });
    return p;
  }

  /** Every line the current process printed. */
  get lines(): readonly string[] {
    return this.proc.lines;
  }

  get pid(): number | undefined {
    return this.proc.child.pid;
  }

  /** Sends `signal` to the current process; resolves once it exited when the signal ends it. */
  signal(signal: NodeJS.Signals): Promise<void> {
    const exited = new Promise<void>((r) => this.exitWaiters.push(r));
    this.proc.child.kill(signal);
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') {
      return Promise.resolve();
    }
    return exited;
  }

  /** Ends the pod for good (SIGTERM, as a scale-down or a deleted release does); resolves on exit. */
  async retire(): Promise<number | null> {
    this.retired = true;
    const p = this.proc;
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.child.kill('SIGCONT');
      p.child.kill('SIGTERM');
    }
    return p.exited;
  }
}
