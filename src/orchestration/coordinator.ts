/**
 * The coordinator's side of a durable run, in the process that hosts its workflow: the epoch's
 * plan from the global uniform and reversed samplers (α, lr, steps and the plan digest every
 * rank's `trainEpoch` carries and checks against its own shard), and the rendezvous of each
 * generation from the ranks' heartbeats (`CoordinatorServer`). The data set's labels are loaded
 * once per run (the plan needs them, not the images' pixels).
 */
import { ApplicationFailure } from '@temporalio/common';
import { RendezvousTimeoutError } from '../coordinator/api.ts';
import type { CoordinatorServer } from '../coordinator/server.ts';
import type { RunConfig } from '../core/config.ts';
import { planDigest } from '../core/epoch-plan.ts';
import { epochSchedule, planFor } from '../core/epoch-schedule.ts';
import { epochPolicy } from '../core/methods.ts';
import type { CoordinatorDeps } from './activities.ts';
import { type EpochPlanSummary, FAILURE_TYPES } from './api.ts';
import { configOf } from './local.ts';

/** What a plan is derived from, besides the config. */
interface Labels {
  readonly labels: Int32Array;
  readonly numClasses: number;
  readonly counts: number[];
}

/** Options of {@link createCoordinatorDeps}. */
export interface CoordinatorDepsOptions {
  /** The run's heartbeat server; without it (W = 1 in one process) there is no rendezvous. */
  readonly server?: CoordinatorServer;
  /** Each plan as it is made (the α/lr broadcast, e.g. for telemetry); must not throw. */
  readonly onPlan?: (plan: EpochPlanSummary) => void;
}

/** The coordinator's dependencies for the activities on its queue. */
export function createCoordinatorDeps(o: CoordinatorDepsOptions = {}): CoordinatorDeps {
  const loaded = new Map<string, Promise<Labels>>();
  const labelsOf = (cfg: RunConfig): Promise<Labels> => {
    const key = JSON.stringify(cfg.dataset);
    let l = loaded.get(key);
    if (!l) {
      l = import('../data/load.ts')
        .then(({ loadData }) => loadData(cfg.dataset))
        .then((d) => ({ labels: d.train.labels, numClasses: d.train.numClasses, counts: d.trainCounts }));
      l.catch(() => loaded.delete(key)); // a failed load is tried again by the activity's retry
      loaded.set(key, l);
    }
    return l;
  };
  return {
    async planEpoch(req) {
      const cfg = configOf(req);
      const { labels, numClasses, counts } = await labelsOf(cfg);
      const plan = planFor(cfg, epochPolicy(cfg, req.epoch, counts), req.epoch, labels, numClasses);
      const { alpha, lr } = epochSchedule(cfg, req.epoch);
      const summary = { epoch: req.epoch, alpha, lr, steps: plan.steps, digest: planDigest(plan) };
      o.onPlan?.(summary);
      return summary;
    },
    waitingFor: () => o.server?.waitingFor() ?? [],
    async formGeneration(req, signal) {
      if (!o.server) {
        throw ApplicationFailure.nonRetryable(
          `run ${req.runId}: ${req.world} ranks need the coordinator's heartbeat server, which this process does not serve`,
          FAILURE_TYPES.unsupported,
        );
      }
      try {
        return await o.server.formGeneration(req.world, req.generation, req.timeoutMs, signal);
      } catch (err) {
        if (err instanceof RendezvousTimeoutError) {
          throw ApplicationFailure.retryable(`run ${req.runId} generation ${req.generation}: ${err.message}`);
        }
        throw err;
      }
    },
  };
}
