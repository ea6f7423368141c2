/**
 * `bbn watch RUN --nats URL`: a live view of every worker of a run (step rate, loss, α, lr, share
 * of time in allreduce, heartbeat age) from the run's NATS subjects, redrawn in place on a TTY and
 * printed as plain blocks otherwise; it ends on Ctrl-C or when the run ends.
 * `bbn runs --nats URL`: every run in the `bbn-runs` key-value bucket, newest first.
 */
import type { Command } from 'commander';
import type { NatsConnection } from 'nats';
import { checkRunId, type RunStatus } from '../events/api.ts';
import { applyEvent, emptyWatchState, type WatchState } from '../events/watch-state.ts';
import { formatTable } from './report-command.ts';

const fixed = (x: number | null, digits: number) => (x === null ? '-' : x.toFixed(digits));
const percent = (x: number | null) => (x === null ? '-' : `${(100 * x).toFixed(1)}`);

/** Seconds, short: `0.4s`, `12s`, `3m05s`. */
function age(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 60) return `${Math.round(s)}s`;
  return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
}

/** The watch screen: a header line about the run, then one row per publishing source. Pure. */
export function formatWatchTable(state: WatchState, now: number): string {
  const head =
    `run ${state.runId}  epoch ${state.epoch ?? '-'}` +
    `  α ${fixed(state.alpha, 3)}  lr ${state.lr === null ? '-' : state.lr.toPrecision(3)}` +
    `  last top-1 ${percent(state.lastTop1)}%` +
    (state.lastCheckpoint ? `  checkpoint ${state.lastCheckpoint}` : '') +
    (state.ended ? `  [run ${state.ended.state}${state.ended.reason ? `: ${state.ended.reason}` : ''}]` : '');
  const workers = [...state.workers.values()].sort(
    (a, b) => a.role.localeCompare(b.role) || (a.rank ?? -1) - (b.rank ?? -1),
  );
  if (workers.length === 0) return `${head}\n(no worker heard from yet)`;
  const header = [
    'source',
    'epoch',
    'step',
    'steps/s',
    'samples/s',
    'loss',
    'α',
    'lr',
    'allreduce %',
    'heartbeat',
    'status',
  ];
  const rows = workers.map((w) => [
    w.rank === null ? w.role : `${w.role} ${w.rank}`,
    w.epoch === null ? '-' : String(w.epoch),
    // step/steps of the epoch when the row is in the epoch the run announced
    w.step === null
      ? '-'
      : state.epochSteps !== null && w.epoch === state.epoch
        ? `${w.step}/${state.epochSteps}`
        : String(w.step),
    fixed(w.stepsPerSecond, 2),
    fixed(w.samplesPerSecond, 0),
    fixed(w.loss, 4),
    fixed(w.alpha, 3),
    w.lr === null ? '-' : w.lr.toPrecision(3),
    percent(w.allreduceShare),
    `${age(now - w.lastSeen)} ago`,
    w.failed ? `failed: ${w.failed}` : w.left ? 'left' : 'ok',
  ]);
  return `${head}\n${formatTable(header, rows)}`;
}

/** The `bbn runs` table. Pure. */
export function formatRunsTable(runs: readonly RunStatus[], now: number): string {
  if (runs.length === 0) return 'no runs recorded in the bbn-runs bucket';
  const header = ['run', 'state', 'epoch', 'step', 'best top-1 %', 'updated'];
  const rows = runs.map((r) => [
    r.runId,
    r.state,
    r.epochs === null ? String(r.epoch) : `${r.epoch}/${r.epochs}`,
    String(r.step),
    percent(r.bestTop1),
    `${age(now - r.updatedAt)} ago`,
  ]);
  return formatTable(header, rows);
}

/** Options of {@link watchRun}. */
export interface WatchRunOptions {
  nats: string;
  runId: string;
  out?: NodeJS.WriteStream | NodeJS.WritableStream;
  /** Redraw in place with ANSI cursor moves; default: whether `out` is a TTY. */
  tty?: boolean;
  /** Redraw period (ms); default 250 on a TTY, 2000 otherwise. */
  refreshMs?: number;
  /** Ends the watch (Ctrl-C is wired to this by the command). */
  signal?: AbortSignal;
  now?: () => number;
}

/** Watches a run until it ends or `signal` aborts; resolves with the final state. */
export async function watchRun(opts: WatchRunOptions): Promise<WatchState> {
  const out = opts.out ?? process.stdout;
  const tty = opts.tty ?? (out as NodeJS.WriteStream).isTTY === true;
  const now = opts.now ?? Date.now;
  const state = emptyWatchState(checkRunId(opts.runId));
  // Imported on use, like the subscriber below: only these commands talk to NATS.
  const [{ subscribeRun }, { connectNats }] = await Promise.all([
    import('../events/subscriber.ts'),
    import('../events/credentials.ts'),
  ]);
  const nc: NatsConnection = await connectNats(opts.nats, { maxReconnectAttempts: -1, name: 'bbn-watch' });
  let drawnLines = 0;
  let drawnEvents = -1;
  let invalid = 0;
  const draw = () => {
    if (!tty && state.events === drawnEvents) return; // plain output: only when something changed
    drawnEvents = state.events;
    const text = formatWatchTable(state, now()) + (invalid ? `\n(${invalid} invalid messages ignored)` : '');
    if (tty) {
      // Move up over the previous frame and clear to the end of the screen, then draw.
      out.write(`${drawnLines > 0 ? `\x1b[${drawnLines}A\r` : ''}\x1b[J${text}\n`);
      drawnLines = text.split('\n').length;
    } else {
      out.write(`${new Date(now()).toISOString()}\n${text}\n\n`);
    }
  };
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const sub = subscribeRun(nc, state.runId, {
    onEvent: (e) => {
      applyEvent(state, e);
      if (state.ended) finish();
    },
    onInvalid: () => {
      invalid++;
    },
  });
  const timer = setInterval(draw, opts.refreshMs ?? (tty ? 250 : 2000));
  const onAbort = () => finish();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (opts.signal?.aborted) finish();
  try {
    await nc.flush(); // the server has our subscription before the first frame says we are watching
    draw();
    await finished;
    drawnEvents = -1;
    draw();
    return state;
  } finally {
    clearInterval(timer);
    opts.signal?.removeEventListener('abort', onAbort);
    sub.unsubscribe();
    await nc.close();
  }
}

/** Registers `bbn watch`. */
export function registerWatchCommand(program: Command): void {
  program
    .command('watch')
    .description(
      'live view of a run’s workers (step rate, loss, α, lr, allreduce share, heartbeat age) over NATS',
    )
    .argument('<run>', 'run id')
    .requiredOption('--nats <url>', 'NATS server URL, e.g. nats://127.0.0.1:4222')
    .action(async (run: string, o: { nats: string }) => {
      const ac = new AbortController();
      const onSigint = () => ac.abort();
      process.once('SIGINT', onSigint);
      try {
        const state = await watchRun({ nats: o.nats, runId: run, signal: ac.signal });
        if (state.ended?.state === 'failed') process.exitCode = 1;
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}

/** Registers `bbn runs`. */
export function registerRunsCommand(program: Command): void {
  program
    .command('runs')
    .description('list runs and their status from the NATS key-value bucket bbn-runs (no Temporal needed)')
    .requiredOption('--nats <url>', 'NATS server URL, e.g. nats://127.0.0.1:4222')
    .action(async (o: { nats: string }) => {
      const [{ listRunStatuses }, { connectNats }] = await Promise.all([
        import('../events/subscriber.ts'),
        import('../events/credentials.ts'),
      ]);
      const nc = await connectNats(o.nats, { name: 'bbn-runs' });
      try {
        const runs = await listRunStatuses(nc, (key, err) =>
          process.stderr.write(`skipping ${key}: ${err.message}\n`),
        );
        process.stdout.write(`${formatRunsTable(runs, Date.now())}\n`);
      } finally {
        await nc.close();
      }
    });
}
