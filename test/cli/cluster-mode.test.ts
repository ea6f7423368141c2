/**
 * The processes of the Helm chart, on loopback: two `bbn worker --temporal --coordinator` ranks
 * (the StatefulSet's pods) and the `bbn train --external-workers` coordinator (the coordinator
 * Deployment's pod), with exactly the chart's arguments. The coordinator is SIGKILLed mid-run and
 * started again, as Kubernetes would: it re-attaches to the running workflow, and the run ends
 * bit-identical to the same run under `bbn train --workers 2`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { freePort } from '../../src/devservers/index.ts';
import { finalParams, launch, tempDir } from '../distributed/fixtures.ts';
import { processSuite } from '../helpers/process-suite.ts';
import { waitUntil } from '../helpers/servers.ts';

const RUN = 'cluster-mode';

const suite = processSuite();

describe('the chart’s temporal mode as processes (orchestrator + rank workers)', () => {
  it('an orchestrator killed mid-run and restarted re-attaches; the run ends bit-identical', {
    timeout: 240_000,
  }, async () => {
    const plainDir = tempDir();
    assert.equal(
      (
        await launch({
          configPath: suite.configPath,
          outDir: plainDir,
          workers: 2,
          temporal: suite.server.address,
        })
      ).outcome.kind,
      'finished',
    );

    const out = tempDir();
    const coordinatorPort = await freePort();
    const ranks = [0, 1].map((rank) =>
      suite.bbn([
        'worker',
        '--rank',
        String(rank),
        '--temporal',
        suite.server.address,
        '--run-id',
        RUN,
        '--coordinator',
        `127.0.0.1:${coordinatorPort}`,
        '--host',
        '127.0.0.1',
      ]),
    );
    const orchestrate = () =>
      suite.bbn([
        'train',
        '--config',
        suite.configPath,
        '--out',
        out,
        '--run-id',
        RUN,
        '--workers',
        '2',
        '--temporal',
        suite.server.address,
        '--external-workers',
        '--coordinator-host',
        '127.0.0.1',
        '--coordinator-port',
        String(coordinatorPort),
      ]);
    const first = orchestrate();
    await waitUntil(
      'epoch 1 ends on rank 0',
      () => ranks[0].lines.some((l) => l.startsWith('epoch 1/3')),
      120_000,
    );
    first.child.kill('SIGKILL');
    await first.exited;
    assert.ok(first.lines.some((l) => l.includes(`run ${RUN}: started`)));

    const second = orchestrate();
    await waitUntil(
      'the run ends',
      () => second.lines.some((l) => l.startsWith('run ended; serving nothing more')),
      180_000,
    );
    assert.ok(
      second.lines.some((l) => l.includes(`run ${RUN}: re-attached to the running workflow`)),
      second.lines.join('\n'),
    );
    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0, 'the orchestrator leaves cleanly on SIGTERM');
    for (const r of ranks) r.child.kill('SIGTERM');
    assert.deepEqual(await Promise.all(ranks.map((r) => r.exited)), [0, 0], 'ranks stop cleanly on SIGTERM');
    assert.deepEqual(finalParams(out), finalParams(plainDir), 'bit-identical to bbn train --workers 2');
  });
});
