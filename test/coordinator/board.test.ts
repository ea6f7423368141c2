/**
 * The coordinator's view of the ranks from their heartbeats alone, on a fake clock: the rendezvous
 * takes only ranks heard since it began (a rank that just died never enters a new ring), and the
 * watched generation's silent ranks are reported once, after the heartbeat timeout and not before.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RankBeat } from '../../src/coordinator/api.ts';
import { RankBoard } from '../../src/coordinator/board.ts';

function fakeClock() {
  let t = 1_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const beat = (rank: number, extra: Partial<RankBeat> = {}): RankBeat => ({
  rank,
  phase: 'idle',
  epoch: 0,
  step: 0,
  ringAddress: `127.0.0.1:${7000 + rank}`,
  host: 'h',
  pid: 100 + rank,
  incarnation: `a${rank}`,
  progressAgeMs: 0,
  ...extra,
});

describe('RankBoard', () => {
  it('the roster lists every rank heard since the rendezvous began, else the missing ranks', () => {
    const clock = fakeClock();
    const board = new RankBoard(clock);
    board.record(beat(0));
    board.record(beat(1));
    assert.deepEqual(board.roster(2), { peers: ['127.0.0.1:7000', '127.0.0.1:7001'] });
    assert.deepEqual(board.roster(3), { missing: [2] });
    const since = clock.advance(10);
    // Rank 1's last beat predates the rendezvous: it may have just died, so it is not taken.
    board.record(beat(0));
    assert.deepEqual(board.roster(2, since), { missing: [1] });
    board.record(beat(1, { ringAddress: '10.0.0.9:7071' })); // its replacement, listening elsewhere
    assert.deepEqual(board.roster(2, since), { peers: ['127.0.0.1:7000', '10.0.0.9:7071'] });
  });

  it('reports a watched rank silent for longer than the timeout once, naming what it last said', () => {
    const clock = fakeClock();
    const board = new RankBoard(clock, { heartbeatTimeoutMs: 5_000 });
    assert.deepEqual(board.judge(), [], 'nothing is judged before a generation is watched');
    board.record(beat(0));
    board.record(beat(1, { phase: 'training', epoch: 2, step: 7 }));
    board.watch(2, 0);
    clock.advance(4_000);
    board.record(beat(0));
    clock.advance(1_000);
    assert.deepEqual(board.judge(), [], 'exactly the timeout is not yet silence');
    clock.advance(1);
    const [v, ...rest] = board.judge();
    assert.deepEqual(rest, []);
    assert.equal(v.rank, 1);
    assert.equal(v.cause, 'silent');
    assert.equal(v.generation, 0);
    assert.equal(v.silentForMs, 5_001);
    assert.match(v.detail, /no heartbeat for 5\.0 s; last heard training at epoch 2 step 7 \(pid 101 on h\)/);
    clock.advance(10_000);
    assert.deepEqual(
      board.judge().map((x) => x.rank),
      [0],
      'rank 1 is not reported twice; rank 0 went silent too',
    );
    board.unwatch(); // a new generation forming: nobody is judged meanwhile
    clock.advance(60_000);
    assert.deepEqual(board.judge(), []);
    board.watch(2, 1); // the new generation formed: judged afresh, silence counted from its formation
    clock.advance(5_001);
    assert.deepEqual(
      board.judge().map((x) => [x.rank, x.generation]),
      [
        [0, 1],
        [1, 1],
      ],
      'each verdict names the generation it was lost from',
    );
  });

  it('a rank never heard in a watched generation is reported after the timeout from its formation', () => {
    const clock = fakeClock();
    const board = new RankBoard(clock, { heartbeatTimeoutMs: 5_000 });
    board.record(beat(0));
    board.watch(2, 0);
    clock.advance(5_001);
    assert.deepEqual(
      board.judge().map((v) => [v.rank, v.detail]),
      [
        [0, 'silent: no heartbeat for 5.0 s; last heard idle at epoch 0 step 0 (pid 100 on h)'],
        [1, 'silent: no heartbeat for 5.0 s'],
      ],
    );
  });

  it('a watched rank taken over by another process is reported exited at once, before it could look silent', () => {
    const clock = fakeClock();
    const board = new RankBoard(clock);
    board.record(beat(0, { phase: 'training' }));
    board.record(beat(1, { phase: 'training' }));
    board.watch(2, 0);
    clock.advance(500);
    board.record(beat(0, { phase: 'training', step: 3 }));
    board.record(beat(1, { phase: 'training', step: 3 }));
    assert.deepEqual(board.judge(), [], 'the same processes: nothing to say');
    // Rank 1 is SIGKILLed and its pod restarted at once: the new process beats within the timeout.
    clock.advance(800);
    board.record(beat(1, { pid: 4242, incarnation: 'b1' }));
    const verdicts = board.judge();
    assert.deepEqual(
      verdicts.map((v) => [v.rank, v.cause]),
      [[1, 'exited']],
    );
    assert.match(
      verdicts[0].detail,
      /^exited: another process \(pid 4242 on h\) now heartbeats as rank 1, which was pid 101 on h/,
    );
    board.record(beat(1, { pid: 4343, incarnation: 'c1' }));
    assert.deepEqual(board.judge(), [], 'reported once per watch');
    // A process replaced before the generation formed is simply its member (the roster took it).
    board.record(beat(0, { pid: 555, incarnation: 'b0' }));
    board.watch(2, 0);
    board.record(beat(0, { pid: 555, incarnation: 'b0' }));
    board.record(beat(1, { pid: 4343, incarnation: 'c1' }));
    assert.deepEqual(board.judge(), []);
  });

  it('a container restarted in place (the same pid 1 on the same host) is another incarnation: reported exited', () => {
    const clock = fakeClock();
    const board = new RankBoard(clock);
    const pod = { pid: 1, host: 'bbn-rank-1' };
    board.record(beat(0, { phase: 'training' }));
    board.record(beat(1, { ...pod, phase: 'training', incarnation: 'f00d0001' }));
    board.watch(2, 0);
    clock.advance(900);
    board.record(beat(1, { ...pod, phase: 'starting', incarnation: 'f00d0002' }));
    assert.deepEqual(
      board.judge().map((v) => [v.rank, v.cause, v.detail]),
      [
        [
          1,
          'exited',
          'exited: another process (pid 1 on bbn-rank-1) now heartbeats as rank 1, which was pid 1 on bbn-rank-1 (last heard training at epoch 0 step 0)',
        ],
      ],
    );
  });
});
