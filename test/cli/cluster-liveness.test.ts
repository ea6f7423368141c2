/**
 * A frozen rank in the chart's process layout, on the shipped defaults: two `bbn worker
 * --temporal --coordinator` ranks (no local supervisor watches them, as on Kubernetes) and the
 * `bbn train --external-workers` coordinator. Rank 1 is SIGSTOPped in the middle of epoch 2: the
 * coordinator must report it (cause `silent`) within 5 s, the run's status must name it and a new
 * generation must begin, whose rendezvous the status shows waiting for rank 1; then the test does
 * what the kubelet's liveness probe would (SIGKILL the frozen process, start a new one) and the run
 * must end bit-identical to an uninterrupted one.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { freePort } from '../../src/devservers/index.ts';
import { runStatus } from '../../src/orchestration/client.ts';
import { finalParams, launch, MID_EPOCH_RUN, MID_EPOCH_STEPS, tempDir } from '../distributed/fixtures.ts';
import { processSuite } from '../helpers/process-suite.ts';
import { waitUntil } from '../helpers/servers.ts';

const RUN = 'cluster-liveness';
/** The bound: a lost rank is detected by the coordinator within 5 s. */
const DETECT_BOUND_MS = 5_000;

const suite = processSuite();

describe('a frozen rank where no local supervisor watches (the chart’s layout)', () => {
  it('the coordinator reports it silent within 5 s, status names it, the epoch restarts; replaced, the run ends bit-identical', {
    timeout: 300_000,
  }, async (t) => {
    const plainDir = tempDir();
    const plain = await launch({
      configPath: suite.configPath,
      outDir: plainDir,
      workers: 2,
      overrides: MID_EPOCH_RUN,
      temporal: suite.server.address,
    });
    assert.equal(plain.outcome.kind, 'finished');

    const out = tempDir();
    const coordinatorPort = await freePort();
    const rank = (r: number) =>
      suite.bbn([
        'worker',
        '--rank',
        String(r),
        '--temporal',
        suite.server.address,
        '--run-id',
        RUN,
        '--coordinator',
        `127.0.0.1:${coordinatorPort}`,
      ]);
    const ranks = [rank(0), rank(1)];
    const times: { frozen?: number; verdict?: number; status?: number; moved?: number } = {};
    const coordinator = suite.bbn(
      [
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
        '--coordinator-port',
        String(coordinatorPort),
        ...MID_EPOCH_RUN,
      ],
      (line) => {
        if (times.verdict === undefined && line.includes(`run ${RUN}: rank 1 silent: no heartbeat for`)) {
          times.verdict = performance.now();
        }
      },
    );
    const connection = await Connection.connect({ address: suite.server.address });
    const client = new Client({ connection });
    let frozenAt: { epoch: number; step: number } | undefined;
    try {
      // Freeze rank 1 once it has stepped in epoch 2; then follow the run's status.
      await waitUntil(
        'rank 1 trains in epoch 2',
        async () => {
          const s = await runStatus(client, RUN).catch(() => undefined);
          const r = s?.ranks.find((x) => x.rank === 1);
          if (r && r.epoch === 2 && r.step > 0) {
            frozenAt = { epoch: r.epoch, step: r.step };
            ranks[1].child.kill('SIGSTOP');
            times.frozen = performance.now();
            return true;
          }
          return false;
        },
        180_000,
      );
      await waitUntil(
        'the status names rank 1 silent and a new generation begins',
        async () => {
          const s = await runStatus(client, RUN).catch(() => undefined);
          const now = performance.now();
          if (times.status === undefined && s?.lost?.some((l) => l.rank === 1 && l.cause === 'silent')) {
            times.status = now;
          }
          if (times.moved === undefined && s && s.generation > 0) times.moved = now;
          return times.status !== undefined && times.moved !== undefined;
        },
        30_000,
      );
      // The kubelet's part: the liveness probe fails, the frozen container is killed and restarted
      // (after the status shows the new generation waiting for it: a missing rank is named).
      ranks[1].child.kill('SIGKILL');
      await ranks[1].exited;
      await waitUntil(
        "the status names the rank the new generation's rendezvous waits for",
        async () => !!(await runStatus(client, RUN).catch(() => undefined))?.rendezvous?.missing.includes(1),
        30_000,
      );
      ranks[1] = rank(1);
      await waitUntil(
        'the run ends',
        () => coordinator.lines.some((l) => l.startsWith('run ended; serving nothing more')),
        240_000,
      );
      const { frozen, verdict, status, moved } = times;
      assert.ok(frozenAt && frozenAt.step < MID_EPOCH_STEPS, 'rank 1 was frozen in the middle of epoch 2');
      assert.ok(frozen !== undefined && verdict !== undefined, coordinator.lines.join('\n'));
      assert.ok(status !== undefined && moved !== undefined);
      const s = (x: number) => `${((x - frozen) / 1000).toFixed(1)} s`;
      t.diagnostic(
        `rank 1 SIGSTOPped at epoch ${frozenAt.epoch} step ${frozenAt.step}; coordinator verdict after ${s(verdict)}, ` +
          `status named it after ${s(status)}, generation 1 began after ${s(moved)}`,
      );
      assert.ok(verdict - frozen <= DETECT_BOUND_MS, `verdict within ${DETECT_BOUND_MS} ms (${s(verdict)})`);
      assert.ok(
        status - frozen <= DETECT_BOUND_MS + 500,
        `status within the bound plus one poll (${s(status)})`,
      );
      assert.deepEqual(finalParams(out), finalParams(plainDir), 'bit-identical to the uninterrupted run');
    } finally {
      for (const r of ranks) r.child.kill('SIGTERM');
      coordinator.child.kill('SIGTERM');
      await Promise.all([...ranks.map((r) => r.exited), coordinator.exited]);
      await connection.close();
    }
  });
});
