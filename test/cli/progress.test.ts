/** The progress line's elapsed time and ETA (a fake clock; the plain, non-TTY form). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createProgress, formatDuration, type StepProgress } from '../../src/cli/progress.ts';

const step = (epoch: number, s: number): StepProgress => ({
  epoch,
  step: s,
  steps: 10,
  epochs: 3,
  loss: 1,
  accuracy: 0.5,
  alpha: 0.9,
  lr: 0.1,
  stepsPerSecond: 2,
});

describe('progress', () => {
  it('formats durations as m:ss and h:mm:ss', () => {
    assert.equal(formatDuration(0), '0:00');
    assert.equal(formatDuration(65.4), '1:05');
    assert.equal(formatDuration(3600 + 62), '1:01:02');
  });

  it('prints elapsed time and the ETA of the whole run at the observed wall rate', () => {
    let t = 0;
    const lines: string[] = [];
    const stream = { isTTY: false, write: (s: string) => lines.push(s) } as unknown as NodeJS.WriteStream;
    const progress = createProgress(stream, 0, () => t);
    t = 1_000;
    progress.step(step(1, 1)); // the first step seen: no rate yet
    t = 11_000;
    progress.step(step(1, 6)); // 5 steps in 10 s: 0.5 steps/s; 24 of 30 left
    t = 31_000;
    progress.step(step(2, 6)); // 15 steps in 30 s; 14 left
    assert.match(lines[0], /0:00 elapsed, ETA -\n$/);
    assert.match(lines[1], /0:10 elapsed, ETA 0:48\n$/);
    assert.match(lines[2], /0:30 elapsed, ETA 0:28\n$/);
  });
});
