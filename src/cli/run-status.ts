/**
 * `bbn status RUN|DIR` without `--k8s`. A run directory is read at once from its files (config,
 * metrics rows, checkpoints, summary): a finished or stopped local run has no server to ask, and
 * its directory says everything. Only when the directory's run is not finished and a Temporal
 * server listens at the address (a quick TCP probe, before the SDK is even loaded) is its live
 * workflow asked, so that `bbn status runs/NAME` during training shows the ranks' positions.
 * A run id goes to Temporal (run-commands.ts), with one clear line when the server or the run is
 * not there.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { listCheckpoints } from '../worker/checkpoint.ts';
import { type EpochMetrics, type RunSummary, readMetrics, runPaths } from '../worker/run-dir.ts';
import { type LockHolder, lockHolder } from '../worker/run-lock.ts';
import {
  fetchRunStatus,
  formatRunStatus,
  RunBusyError,
  type RunCommandOutput,
  RunNotReachableError,
  type TemporalTarget,
  temporalStatus,
} from './run-commands.ts';
import { runIdFor } from './run-id.ts';

/** What a run directory says about its run. */
export interface RunDirStatus {
  readonly dir: string;
  readonly name: string;
  readonly method: string;
  /**
   * `completed`: all epochs and the summary written; `stopped`: resumable; `new`: nothing trained
   * yet; `running`: its workflow runs (it was too busy in a step to say more).
   */
  readonly state: 'completed' | 'stopped' | 'new' | 'running';
  /** Epochs with a metrics row. */
  readonly epoch: number;
  readonly totalEpochs: number;
  readonly last: EpochMetrics | null;
  /** Newest checkpoint file (path), or null. */
  readonly checkpoint: string | null;
  readonly summary: RunSummary | null;
  /** The live process that holds the directory's lock (training it), if any. */
  readonly holder?: LockHolder;
}

/** Reads the status of the run in `dir`; a clear error when `dir` is not a run directory. */
export function readRunDirStatus(dir: string): RunDirStatus {
  const p = runPaths(dir);
  let cfg: { name?: unknown; method?: unknown; train?: { epochs?: unknown } };
  try {
    cfg = (parseYaml(readFileSync(p.config, 'utf8')) ?? {}) as typeof cfg;
  } catch (err) {
    throw new RunNotReachableError(
      `${dir} is not a run directory made by bbn train (cannot read ${p.config}: ${(err as Error).message.split('\n')[0]})`,
    );
  }
  const rows = readMetrics(dir);
  const last = rows.at(-1) ?? null;
  const totalEpochs = Number(cfg.train?.epochs ?? 0);
  let summary: RunSummary | null = null;
  try {
    summary = JSON.parse(readFileSync(p.summary, 'utf8')) as RunSummary;
  } catch {
    // no (readable) summary: not finished
  }
  const checkpoints = listCheckpoints(p.checkpoints);
  const epoch = last?.epoch ?? 0;
  const holder = lockHolder(dir);
  const state =
    summary && epoch >= totalEpochs
      ? 'completed'
      : holder
        ? 'running'
        : rows.length > 0 || checkpoints.length > 0
          ? 'stopped'
          : 'new';
  return {
    dir,
    name: String(cfg.name ?? ''),
    method: String(cfg.method ?? ''),
    state,
    epoch,
    totalEpochs,
    last,
    checkpoint: checkpoints.length > 0 ? join(p.checkpoints, checkpoints[checkpoints.length - 1]) : null,
    summary,
    ...(holder ? { holder } : {}),
  };
}

const pct = (x: number | null | undefined) => (x == null ? '-' : `${(100 * x).toFixed(2)}%`);

/** Formats a run directory's status for people. */
export function formatRunDirStatus(s: RunDirStatus): string {
  const what =
    s.state === 'completed'
      ? 'completed'
      : s.state === 'running'
        ? s.holder
          ? `running (process ${s.holder.pid} on ${s.holder.host} trains it, since ${s.holder.since})`
          : 'running (its workers were busy in a step; ask again, or follow it with bbn watch)'
        : s.state === 'stopped'
          ? `stopped (not running); continue with: bbn train --resume ${s.dir}`
          : 'not started';
  const lines = [`run ${s.dir} (${s.name}, ${s.method}): ${what}, epoch ${s.epoch}/${s.totalEpochs}`];
  if (s.last) {
    const m = s.last;
    lines.push(
      `  last epoch ${m.epoch}: alpha ${m.alpha ?? '-'}  lr ${m.lr}  train loss ${m.trainLoss.toFixed(4)}, ` +
        `top-1 ${pct(m.testTop1)} (many ${pct(m.many)}, medium ${pct(m.medium)}, few ${pct(m.few)})`,
    );
  }
  if (s.summary && s.state === 'completed') {
    const b = s.summary.best;
    lines.push(`  best epoch ${b.epoch}: top-1 ${pct(b.top1)}; report with: bbn report ${s.dir}`);
  }
  lines.push(`  checkpoint ${s.checkpoint ?? '-'}`);
  return `${lines.join('\n')}\n`;
}

/** Whether something accepts TCP connections at `host:port` within `timeoutMs`. */
export function isListening(address: string, timeoutMs: number): Promise<boolean> {
  const i = address.lastIndexOf(':');
  const host = i > 0 ? address.slice(0, i).replace(/^\[|\]$/g, '') : address;
  const port = Number(i > 0 ? address.slice(i + 1) : 7233);
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** How long `bbn status` waits for a Temporal server to accept a connection. */
const PROBE_MS = 1_500;
/** How long `bbn status DIR` waits for a live run's workers before answering from the files. */
const LIVE_QUERY_MS = 2_000;

/** `bbn status RUN|DIR` (see the module doc). */
export async function showStatus(
  run: string,
  t: TemporalTarget & { json?: boolean },
  out: RunCommandOutput = process.stdout,
): Promise<void> {
  if (existsSync(run) && statSync(run).isDirectory()) {
    let s = readRunDirStatus(run);
    if (s.state !== 'completed' && (await isListening(t.temporal, PROBE_MS))) {
      // Perhaps training right now: its workflow knows more (ranks, steps) than the files.
      const live = await fetchRunStatus(runIdFor(run), t, LIVE_QUERY_MS).catch((err: Error) => err);
      if (live instanceof RunBusyError) s = { ...s, state: 'running' };
      else if (!(live instanceof Error) && 'ranks' in live) {
        out.write(t.json ? `${JSON.stringify(live, null, 2)}\n` : formatRunStatus(live));
        return;
      }
    }
    out.write(t.json ? `${JSON.stringify(s, null, 2)}\n` : formatRunDirStatus(s));
    return;
  }
  if (!(await isListening(t.temporal, PROBE_MS))) {
    const dirHint = existsSync(join('runs', run)) ? ` (its directory? bbn status runs/${run})` : '';
    throw new RunNotReachableError(
      `no Temporal server at ${t.temporal} to ask about run ${run}${dirHint}; ` +
        'for a finished or stopped local run give its directory (bbn status runs/NAME), ' +
        'for a live one the address of its server (--temporal HOST:PORT)',
    );
  }
  await temporalStatus(run, t, out);
}
