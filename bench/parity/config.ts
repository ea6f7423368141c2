/** The parity bench's run config: configs/mnist-lt.yaml at a chosen size (the same for both implementations). */
import { loadRunConfig } from '../../src/cli/config-file.ts';
import type { RunConfig } from '../../src/core/config.ts';

/** Size of the bench's runs (defaults: the shipped ResNet-14, width 8, 12 epochs). */
export interface BenchSize {
  readonly depth: string;
  readonly width: string;
  readonly epochs: string;
  readonly milestones: string;
}

const SHIPPED: BenchSize = { depth: '14', width: '8', epochs: '12', milestones: '8,11' };

/** configs/mnist-lt.yaml with `method`, `seed` and the size. */
export function benchConfig(method: string, seed: number, size: BenchSize = SHIPPED): RunConfig {
  return loadRunConfig('configs/mnist-lt.yaml', [
    `method=${method}`,
    `seed=${seed}`,
    `model.depth=${size.depth}`,
    `model.baseWidth=${size.width}`,
    `train.epochs=${size.epochs}`,
    `train.lrSchedule.milestones=[${size.milestones}]`,
  ]);
}
