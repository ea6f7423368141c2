/** The local rank supervisor with stand-in children: restart, give up, follow scale, stop all. */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { describe, it } from 'node:test';
import {
  FROZEN_AFTER_MS,
  RankGaveUpError,
  type RankLoss,
  RankProcesses,
} from '../../src/supervisor/rank-processes.ts';
import { waitUntil } from '../helpers/servers.ts';

const node = (code: string) => [process.execPath, '-e', code];
const SLEEPER = node('setInterval(() => {}, 1e6)');
/** A stand-in rank that serves /healthz and announces it as `bbn worker --temporal` does. */
const HEALTHY = node(
  "const s = require('node:http').createServer((q, r) => r.end('{}'));" +
    "s.listen(0, '127.0.0.1', () => console.log('rank: ready; health http://127.0.0.1:' + s.address().port + '/healthz'));",
);

describe('RankProcesses', () => {
  it('restarts a dying rank, then gives up naming it, its exit and its last lines', async () => {
    const spawned: number[] = [];
    const ranks = new RankProcesses({
      command: () => node('console.log("rank says goodbye"); process.exit(3)'),
      onSpawn: (rank) => spawned.push(rank),
      onLine: () => {},
      maxRestarts: 2,
      restartDelayMs: 10,
    });
    ranks.ensure(1);
    await assert.rejects(ranks.failed, (err: Error) => {
      assert.ok(err instanceof RankGaveUpError);
      assert.match(err.message, /worker rank 0 exited with code 3 after 2 restarts/);
      assert.match(err.message, /rank says goodbye/);
      return true;
    });
    assert.deepEqual(spawned, [0, 0, 0], 'the first start and two restarts');
    await ranks.close();
  });

  it('follows the world size up and down, and stops every rank on close', async () => {
    const children = new Map<number, ChildProcess[]>();
    const ranks = new RankProcesses({
      command: () => SLEEPER,
      onSpawn: (rank, child) => children.set(rank, [...(children.get(rank) ?? []), child]),
    });
    ranks.ensure(3);
    assert.deepEqual([...children.keys()], [0, 1, 2]);
    const rank2 = children.get(2)?.[0];
    ranks.ensure(2);
    await waitUntil('rank 2 stopped', () => rank2?.exitCode !== null || rank2?.signalCode !== null, 10_000);
    assert.equal(children.get(2)?.length, 1, 'a rank scaled away is not restarted');
    ranks.ensure(2);
    assert.equal(children.get(0)?.length, 1, 'ensure keeps running ranks as they are');
    await ranks.close();
    for (const [rank, list] of children) {
      for (const c of list) assert.ok(c.exitCode !== null || c.signalCode !== null, `rank ${rank} stopped`);
    }
  });

  it('a frozen rank (SIGSTOP) is judged from its health endpoint on the shipped bound, killed by PID, reported and replaced', {
    timeout: 60_000,
  }, async () => {
    const children: ChildProcess[] = [];
    const losses: (RankLoss & { at: number })[] = [];
    const announced: number[] = [];
    const ranks = new RankProcesses({
      command: () => HEALTHY,
      onSpawn: (_, child) => children.push(child),
      onLine: (_, line) => {
        if (line.includes('health http')) announced.push(performance.now());
      },
      onLost: (loss) => losses.push({ ...loss, at: performance.now() }),
      restartDelayMs: 10,
    });
    try {
      ranks.ensure(1);
      await waitUntil('rank 0 announced its health endpoint', () => announced.length === 1, 20_000);
      // Alive and answering: a few probe rounds pass without a verdict.
      await new Promise((r) => setTimeout(r, 2.5 * FROZEN_AFTER_MS));
      assert.equal(losses.length, 0, 'a healthy rank is never judged');
      const frozenAt = performance.now();
      children[0].kill('SIGSTOP');
      await waitUntil('the frozen rank is reported', () => losses.length === 1, 20_000);
      const loss = losses[0];
      assert.equal(loss.cause, 'frozen');
      assert.equal(loss.pid, children[0].pid);
      assert.match(loss.detail, /frozen: no answer from its health endpoint for \d+\.\d s/);
      const detectedMs = loss.at - frozenAt;
      assert.ok(
        detectedMs >= FROZEN_AFTER_MS - 1_000 && detectedMs <= FROZEN_AFTER_MS + 2_000,
        `verdict after ${detectedMs} ms`,
      );
      await waitUntil('the frozen process is killed', () => children[0].signalCode === 'SIGKILL', 10_000);
      await waitUntil('a replacement announced itself', () => announced.length === 2, 20_000);
      assert.equal(children.length, 2);
      assert.equal(losses.length, 1, 'the kill of a frozen rank is not reported again as an exit');
      // An exit is reported at once, as `exited`.
      children[1].kill('SIGKILL');
      await waitUntil('the exit is reported', () => losses.length === 2, 10_000);
      assert.equal(losses[1].cause, 'exited');
      assert.match(losses[1].detail, /was killed by SIGKILL; restarting it/);
    } finally {
      await ranks.close();
    }
  });
});
