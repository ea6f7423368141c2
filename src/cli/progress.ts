/**
 * Training progress for people: a live bar per epoch (loss, accuracy, α, lr, steps/s) on a
 * terminal, and plain periodic lines when the output is a file or a pipe (CI logs, `| tee`).
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

/** A bar on a TTY, periodic plain lines otherwise (every `everySeconds`, and at each epoch's end). */
export function createProgress(stream: NodeJS.WriteStream = process.stderr, everySeconds = 10): ProgressSink {
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
        };
        if (!bar) {
          bar = new SingleBar({
            stream,
            format:
              'epoch {ep} [{bar}] {value}/{total} | loss {loss} acc {acc} | α {alpha} lr {lr} | {sps} steps/s',
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
      const now = performance.now();
      if (now - lastPrint < everySeconds * 1000) return;
      lastPrint = now;
      stream.write(
        `epoch ${p.epoch}/${p.epochs} step ${p.step}/${p.steps} loss ${fmt(p.loss)} acc ${fmt(p.accuracy, 3)} ` +
          `alpha ${fmt(p.alpha, 3)} lr ${p.lr.toExponential(2)} ${p.stepsPerSecond.toFixed(2)} steps/s\n`,
      );
    },
    endEpoch(line) {
      stream.write(`${line}\n`);
    },
    close() {},
  };
}
