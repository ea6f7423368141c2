/** Checkpoints of a run's full training state: model parameters and BN buffers, optimizer and partial-epoch sums. */
import type { RunConfig } from '../core/config.ts';
import type { Model } from '../model/api.ts';
import { type LatestCheckpoint, writeCheckpoint } from './checkpoint.ts';
import { runPaths } from './run-dir.ts';
import type { Trainer, TrainerState } from './trainer.ts';

/** Writes the checkpoint of a run's current state (after `epoch` full epochs and `step` steps of the next). */
export async function saveCheckpoint(
  dir: string,
  cfg: RunConfig,
  model: Model,
  trainer: Trainer,
  position: { epoch: number; step: number },
  extra: Record<string, unknown> = {},
): Promise<string> {
  const state = model.getState();
  const t: TrainerState = trainer.state();
  return writeCheckpoint(
    runPaths(dir).checkpoints,
    {
      meta: {
        ...position,
        modelSignature: state.signature,
        config: cfg,
        extra: { ...extra, optimizer: t.optimizer, partial: t.partial },
      },
      sections: { params: state.params, buffers: state.buffers, momentum: t.momentum },
    },
    cfg.checkpoint.keep,
  );
}

/** Sets model and trainer from a checkpoint. */
export function restoreFrom(latest: LatestCheckpoint, model: Model, trainer: Trainer): void {
  const { meta, sections } = latest.checkpoint;
  model.setState({ signature: meta.modelSignature, params: sections.params, buffers: sections.buffers });
  const extra = meta.extra as { optimizer: TrainerState['optimizer']; partial: TrainerState['partial'] };
  trainer.restore({ momentum: sections.momentum, optimizer: extra.optimizer, partial: extra.partial });
}
