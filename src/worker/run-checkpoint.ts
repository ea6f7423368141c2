/**
 * Checkpoints of a run's full training state: model parameters and BN buffers, optimizer and
 * partial-epoch sums, stamped with the run's identity (run.json); and the one way every path
 * restores a run (`loadRestorable`): only a checkpoint of this run, this model, with sections of
 * the model's sizes and finite weights is used, older ones are tried when the newest fails, and a
 * directory whose checkpoints all fail is refused rather than started over.
 */
import type { RunConfig } from '../core/config.ts';
import type { Model } from '../model/api.ts';
import { type Checkpoint, type LatestCheckpoint, loadLatestGood, writeCheckpoint } from './checkpoint.ts';
import { runPaths } from './run-dir.ts';
import { checkpointRef, readRunIdentity } from './run-identity.ts';
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
  const identity = readRunIdentity(dir);
  return writeCheckpoint(
    runPaths(dir).checkpoints,
    {
      meta: {
        ...position,
        modelSignature: state.signature,
        config: cfg,
        ...(identity ? { run: checkpointRef(identity) } : {}),
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

/**
 * The newest checkpoint of the run in `outDir` that `model` can be restored from: same run
 * (run.json), same model signature, `params`/`buffers` of the model's sizes and `momentum` of the
 * saved optimizer range, finite weights. Undefined when the run has no checkpoint yet; a
 * `CheckpointError` naming every rejected file when none is usable (the caller must not start
 * over in that directory).
 */
export function loadRestorable(outDir: string, model: Model): LatestCheckpoint | undefined {
  const dir = runPaths(outDir).checkpoints;
  const expect = {
    signature: model.signature,
    run: readRunIdentity(outDir),
    sections: { params: model.numParams, buffers: model.numBuffers },
    finite: true,
    check: momentumFits,
  };
  return loadLatestGood(dir, expect);
}

/** The momentum section's length must be the optimizer range saved beside it. */
function momentumFits(ckpt: Checkpoint): string | undefined {
  const range = (ckpt.meta.extra as { optimizer?: { range?: { length?: number } } }).optimizer?.range;
  const got = ckpt.sections.momentum?.length;
  return got === range?.length
    ? undefined
    : `section momentum has ${got ?? 'no'} floats, its optimizer range needs ${range?.length ?? '(none saved)'}`;
}
