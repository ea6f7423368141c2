/**
 * A run's data, loaded and checked against its config: the one place that turns a `dataset`
 * section into training data for a run (the in-process trainer, every rank's compute thread) and
 * the check `bbn train` makes before it starts a run, so that bad data or a config the data cannot
 * satisfy is refused with one line before any run directory, server or workflow exists (a retry
 * could never fix it).
 */
import { ConfigError, type RunConfig } from '../core/config.ts';
import type { LoadedData } from '../data/api.ts';
import { loadData } from '../data/load.ts';

/**
 * Loads `cfg`'s data; rejects with the `DataError` of an unreadable data set or a `ConfigError`
 * for a config the data cannot satisfy (a batch larger than the training set).
 */
export async function loadRunData(cfg: RunConfig): Promise<LoadedData> {
  const data = await loadData(cfg.dataset);
  if (cfg.train.batchSize > data.train.size) {
    throw new ConfigError(
      `train.batchSize (${cfg.train.batchSize}) is larger than the training set (${data.train.size} images of ${data.train.name})`,
    );
  }
  return data;
}

/** Reads `cfg`'s data once and lets it go: {@link loadRunData}'s refusals, before a run starts. */
export async function checkRunData(cfg: RunConfig): Promise<void> {
  await loadRunData(cfg);
}
