/**
 * A run served in its own process, for the crash test: its coordinator (the workflow from a
 * prebuilt bundle file, the plans) and its rank 0 over the local activities; prints `ready` when
 * polling.
 *
 * argv: address runId bundlePath backend [holdEpoch markerPath]
 * With holdEpoch, `trainEpoch` of that epoch writes markerPath and then never finishes (it keeps
 * heartbeating), so the test can SIGKILL this process in the middle of the run.
 */
import { writeFileSync } from 'node:fs';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import type { BackendPreference } from '../../src/model/backend.ts';
import { selectBackend } from '../../src/model/backend.ts';
import type { TrainingDeps } from '../../src/orchestration/activities.ts';
import { rankTaskQueue } from '../../src/orchestration/api.ts';
import { hostCoordinator } from '../../src/orchestration/coordinator-host.ts';
import { createLocalDeps } from '../../src/orchestration/local.ts';
import { createTrainingWorker } from '../../src/orchestration/worker.ts';

Runtime.install({ logger: new DefaultLogger('WARN') });
const [address, runId, bundlePath, backend, holdEpoch, marker] = process.argv.slice(2);
await selectBackend(backend as BackendPreference);
const local = createLocalDeps();
const deps: TrainingDeps = {
  ...local,
  trainEpochOnRank(req, ctl) {
    if (holdEpoch !== undefined && req.epoch === Number(holdEpoch)) {
      writeFileSync(marker, String(process.pid));
      return new Promise(() => {}); // held until the test kills this process
    }
    return local.trainEpochOnRank(req, ctl);
  },
};
const connection = await NativeConnection.connect({ address });
const coordinator = await hostCoordinator({
  connection,
  runId,
  workflows: { codePath: bundlePath },
  bind: null,
});
const rank = await createTrainingWorker({ connection, taskQueue: rankTaskQueue(runId, 0), deps });
process.stdout.write('ready\n');
try {
  await Promise.all([coordinator.worker.run(), rank.run()]);
} finally {
  local.dispose();
  await connection.close();
}
