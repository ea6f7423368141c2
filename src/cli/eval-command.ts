/** `bbn eval --checkpoint PATH [KEY=VALUE …]`: evaluates a saved model on its run's test set (or on other data by overrides). */
import type { Command } from 'commander';
import { applyOverrides, parseRunConfig } from '../core/config.ts';
import { Rng } from '../core/rng.ts';
import { CheckpointError, checkpointMismatch, readCheckpoint } from '../worker/checkpoint.ts';
import { formatTable } from './report-command.ts';

const pct = (x: number | null) => (x === null || Number.isNaN(x) ? '-' : (100 * x).toFixed(2));

/** Registers `bbn eval`. */
export function registerEvalCommand(program: Command): void {
  program
    .command('eval')
    .description("evaluate a checkpoint on its run's test set (override dataset.* to evaluate on other data)")
    .requiredOption('--checkpoint <path>', 'a checkpoint file (runs/NAME/checkpoints/ckpt-…bbnckpt)')
    .option('--json', 'print the report as JSON')
    .argument('[overrides...]', 'KEY=VALUE overrides of the saved config, e.g. dataset.root=/data/cifar')
    .action(async (overrides: string[], opts: { checkpoint: string; json?: boolean }) => {
      // NaN or infinite weights (a diverged run) are refused, naming the file and the section.
      const ckpt = readCheckpoint(opts.checkpoint, { finite: true });
      const cfg = parseRunConfig(
        applyOverrides(ckpt.meta.config, overrides),
        `config saved in ${opts.checkpoint}`,
      );
      // Imported here: tfjs and the data readers cost seconds that `bbn --help` should not pay.
      const [{ loadData }, { selectBackend }, { createModel }, { evaluateModel }, { modelSpecFor }] =
        await Promise.all([
          import('../data/load.ts'),
          import('../model/backend.ts'),
          import('../model/factory.ts'),
          import('../worker/evaluate.ts'),
          import('../worker/run.ts'),
        ]);
      const backend = await selectBackend(cfg.compute.backend, { threads: cfg.compute.threads });
      const data = await loadData(cfg.dataset);
      const model = createModel(modelSpecFor(cfg, data), Rng.fromSeed(cfg.seed).split('init'));
      try {
        const mismatch = checkpointMismatch(opts.checkpoint, ckpt, {
          signature: model.signature,
          sections: { params: model.numParams, buffers: model.numBuffers },
        });
        if (mismatch) throw new CheckpointError(mismatch);
        model.setState({
          signature: ckpt.meta.modelSignature,
          params: ckpt.sections.params,
          buffers: ckpt.sections.buffers,
        });
        const r = await evaluateModel(model, data, cfg);
        if (opts.json) {
          const { predictions: _, ...report } = r;
          process.stdout.write(
            `${JSON.stringify({ checkpoint: opts.checkpoint, backend: backend.name, ...report })}\n`,
          );
          return;
        }
        process.stdout.write(
          `${opts.checkpoint} (epoch ${ckpt.meta.epoch}) on ${data.test.name}, ${data.test.size} images, backend ${backend.name}\n` +
            `${formatTable(
              ['top-1 %', 'many %', 'medium %', 'few %'],
              [[pct(r.top1), pct(r.many), pct(r.medium), pct(r.few)]],
            )}\n`,
        );
      } finally {
        model.dispose();
      }
    });
}
