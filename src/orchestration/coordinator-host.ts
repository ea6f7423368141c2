/**
 * Hosting a run's coordinator: the Temporal worker on the coordinator's queue (the `bbnTraining`
 * workflow and the coordinator's activities) and, when ranks run as processes of their own, the
 * heartbeat server they report to. `bbn train` (locally, and as the coordinator pod with
 * `--external-workers`) and `bbn launch` host it in their own process.
 */
import type { NativeConnection, Worker, WorkflowBundleOption } from '@temporalio/worker';
import type { RunToken } from '../auth/run-token.ts';
import type { RankVerdict } from '../coordinator/api.ts';
import { type BindAddress, CoordinatorServer, type CoordinatorServerOptions } from '../coordinator/server.ts';
import { coordinatorTaskQueue, type EpochPlanSummary } from './api.ts';
import { createCoordinatorDeps } from './coordinator.ts';
import { createTrainingWorker } from './worker.ts';

/** Options of {@link hostCoordinator}. */
export interface CoordinatorHostOptions {
  readonly connection: NativeConnection;
  readonly namespace?: string;
  readonly runId: string;
  /** The workflow bundle (or `true`: build it here). */
  readonly workflows: WorkflowBundleOption | true;
  /** Where the heartbeat server binds; null when the only rank is in this process (W = 1). */
  readonly bind: BindAddress | null;
  /** A rank of the running generation went silent (see `CoordinatorServer`). */
  readonly onLost?: (verdict: RankVerdict) => void;
  /** Lines for people: a rendezvous that still waits for ranks names them (10 s, then each minute). */
  readonly say?: (line: string) => void;
  /** Each epoch plan as the coordinator makes it (the α/lr broadcast). */
  readonly onPlan?: (plan: EpochPlanSummary) => void;
  /** The run's token, required of every heartbeat. */
  readonly token?: RunToken;
}

/** A hosted coordinator: run `worker` until the run ends, then `close()`. */
export interface HostedCoordinator {
  /** The heartbeat server's address (host:port), or null without one. */
  readonly address: string | null;
  readonly worker: Worker;
  readonly server: CoordinatorServer | null;
  close(): Promise<void>;
}

/** Starts the heartbeat server (if asked) and creates the coordinator's Temporal worker. */
export async function hostCoordinator(o: CoordinatorHostOptions): Promise<HostedCoordinator> {
  const onWaiting: CoordinatorServerOptions['onWaiting'] = ({ generation, missing, waitedMs }) => {
    if (missing.length === 0) return;
    const many = missing.length > 1;
    o.say?.(
      `run ${o.runId}: generation ${generation} still waits for rank${many ? 's' : ''} ${missing.join(', ')} after ` +
        `${Math.round(waitedMs / 1000)} s: no heartbeat from ${many ? 'them' : 'it'} at this coordinator; check that ` +
        `${many ? 'they run and reach' : 'it runs and reaches'} it (its address is each rank's --coordinator)`,
    );
  };
  const server = o.bind
    ? new CoordinatorServer({ runId: o.runId, onLost: o.onLost, onWaiting, token: o.token })
    : null;
  const address = o.bind && server ? await server.start(o.bind) : null;
  try {
    const worker = await createTrainingWorker({
      connection: o.connection,
      namespace: o.namespace,
      taskQueue: coordinatorTaskQueue(o.runId),
      coordinator: createCoordinatorDeps({ server: server ?? undefined, onPlan: o.onPlan }),
      workflows: o.workflows,
    });
    return { address, worker, server, close: async () => server?.close() };
  } catch (err) {
    await server?.close();
    throw err;
  }
}
