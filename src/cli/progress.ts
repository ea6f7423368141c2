/**
 * Training progress for people: a live bar per epoch (loss, accuracy, α, lr, steps/s, elapsed
 * time and the run's ETA) on a terminal, and plain periodic lines when the output is a file or a
 * pipe (CI logs, `| tee`).
 */
import { SingleBar } from 'cli-progress';
import type { EpochMetrics } from '../worker/run-dir.ts';
import type { StepReport } from '../worker/trainer.ts';

/** What the trainer reports after each step. */
export interface StepProgress
  extends Pick<StepReport, 'epoch' | 'step' | 'steps' | 'loss' | 'accuracy' | 'alpha' | 'lr'> {
  readonly epochs: number;
  readonly stepsPerSecond: number;
}

/** Receives progress; `end` closes the epoch's bar or line. */
export interface ProgressSink {
  step(p: StepProgress): void;
  endEpoch(line: string): void;
  close(): void;
}

const fmt = (x: number | null, digits = 4) => (x === null ? '-' : x.toFixed(digits));
const pct = (x: number | null) => (x === null ? '-' : (100 * x).toFixed(2));

/** The line that closes an evaluated epoch (every `bbn train` path and rank 0 print the same). */
export function formatEpochLine(m: EpochMetrics, epochs: number): string {
  return (
    `epoch ${m.epoch}/${epochs} loss ${m.trainLoss.toFixed(4)} train-acc ${pct(m.trainAccuracy)}% ` +
    `top1 ${pct(m.testTop1)}% many ${pct(m.many)} medium ${pct(m.medium)} few ${pct(m.few)} ` +
    `alpha ${m.alpha === null ? '-' : m.alpha.toFixed(4)} lr ${m.lr.toExponential(2)} ${m.seconds.toFixed(1)}s`
  );
}

/** Seconds as `m:ss`, or `h:mm:ss` from an hour. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const [h, m, sec] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  const two = (x: number) => String(x).padStart(2, '0');
  return h > 0 ? `${h}:${two(m)}:${two(sec)}` : `${m}:${two(sec)}`;
}

/**
 * Elapsed time since the first step this process saw, and the run's remaining time at the wall
 * rate of the steps since then (evaluation and checkpoints included, so the ETA holds).
 */
export function timeline(now: () => number = () => performance.now()): (p: StepProgress) => string {
  let first: { at: number; done: number } | undefined;
  return (p) => {
    const done = (p.epoch - 1) * p.steps + p.step;
    const t = now();
    first ??= { at: t, done };
    const elapsed = (t - first.at) / 1000;
    const rate = (done - first.done) / Math.max(1e-9, elapsed);
    const left = p.epochs * p.steps - done;
    const eta = done > first.done && elapsed > 0 ? formatDuration(left / rate) : '-';
    return `${formatDuration(elapsed)} elapsed, ETA ${eta}`;
  };
}

/** A bar on a TTY, periodic plain lines otherwise (every `everySeconds`, and at each epoch's end). */
export function createProgress(
  stream: NodeJS.WriteStream = process.stderr,
  everySeconds = 10,
  now: () => number = () => performance.now(),
): ProgressSink {
  const times = timeline(now);
  if (stream.isTTY) {
    let bar: SingleBar | undefined;
    return {
      step(p) {
        const payload = {
          ep: `${p.epoch}/${p.epochs}`,
          loss: fmt(p.loss),
          acc: fmt(p.accuracy, 3),
          alpha: fmt(p.alpha, 3),
          lr: p.lr.toExponential(2),
          sps: p.stepsPerSecond.toFixed(2),
          time: times(p),
        };
        if (!bar) {
          bar = new SingleBar({
            stream,
            format:
              'epoch {ep} [{bar}] {value}/{total} | loss {loss} acc {acc} | α {alpha} lr {lr} | {sps} steps/s | {time}',
            hideCursor: true,
            clearOnComplete: true,
          });
          bar.start(p.steps, p.step, payload);
        } else bar.update(p.step, payload);
      },
      endEpoch(line) {
        bar?.stop();
        bar = undefined;
        stream.write(`${line}\n`);
      },
      close() {
        bar?.stop();
      },
    };
  }
  let lastPrint = 0;
  return {
    step(p) {
      const time = times(p);
      const t = now();
      if (t - lastPrint < everySeconds * 1000) return;
      lastPrint = t;
      stream.write(
        `epoch ${p.epoch}/${p.epochs} step ${p.step}/${p.steps} loss ${fmt(p.loss)} acc ${fmt(p.accuracy, 3)} ` +
          `alpha ${fmt(p.alpha, 3)} lr ${p.lr.toExponential(2)} ${p.stepsPerSecond.toFixed(2)} steps/s ${time}\n`,
      );
    },
    endEpoch(line) {
      stream.write(`${line}\n`);
    },
    close() {},
  };
}
