/**
 * Starts scripts/k8s/start-control-plane.sh (a real API server, controllers and scheduler, and a
 * KWOK fake GPU node) for a test, and stops it. Waits on the script's `ready` line, not a sleep.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../scripts/k8s/start-control-plane.sh', import.meta.url));

/** A running control plane: its kubeconfig, and `stop()` (idempotent). */
export interface ControlPlane {
  kubeconfig: string;
  stop(): Promise<void>;
}

/** Starts the control plane; rejects with the script's output if it fails or is not ready in time. */
export function startControlPlane(timeoutMs = 180_000): Promise<ControlPlane> {
  const child: ChildProcess = spawn('bash', [SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop().then(() => reject(new Error(`control plane not ready after ${timeoutMs} ms:\n${err}`)));
    }, timeoutMs);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^ready (.+)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ kubeconfig: m[1].trim(), stop });
      }
    });
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`start-control-plane.sh exited (${code ?? signal}) before it was ready:\n${err}`));
    });
  });
}
