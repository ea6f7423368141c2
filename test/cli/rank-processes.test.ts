/** The local rank supervisor with stand-in children: restart, give up, follow scale, stop all. */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { describe, it } from 'node:test';
import { RankGaveUpError, RankProcesses } from '../../src/cli/rank-processes.ts';
import { waitUntil } from '../helpers/servers.ts';

const node = (code: string) => [process.execPath, '-e', code];
const SLEEPER = node('setInterval(() => {}, 1e6)');

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
});
