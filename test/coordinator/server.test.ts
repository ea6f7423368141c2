/**
 * The coordinator's server over real gRPC, on its shipped timings: ranks heartbeat through
 * `startHeartbeats`, the rendezvous hands out their ring addresses, a rank whose heartbeats stop
 * is reported within the 5 s timeout plus one judging tick, bad requests get one clear status and
 * the server keeps serving, and a rendezvous that cannot complete names the missing ranks (while it
 * waits, too).
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { RunToken } from '../../src/auth/run-token.ts';
import { DEFAULT_TIMINGS, type RankVerdict, RendezvousTimeoutError } from '../../src/coordinator/api.ts';
import { startHeartbeats } from '../../src/coordinator/link.ts';
import { CoordinatorServer, WAIT_NOTICE_MS } from '../../src/coordinator/server.ts';
import type { bbn } from '../../src/generated/bbn.js';
import { CoordinatorServiceClient } from '../../src/generated/bbn-grpc.ts';

const idle = (rank: number) => () => ({
  phase: 'idle' as const,
  epoch: 1,
  step: rank,
  ringAddress: `127.0.0.1:${7100 + rank}`,
  progressAgeMs: 0,
});

function call(client: CoordinatorServiceClient, req: bbn.v1.HeartbeatRequest.$Properties) {
  return new Promise<bbn.v1.HeartbeatResponse>((resolve, reject) =>
    client.heartbeat(req, (err, res) => (err ? reject(err) : resolve(res!))),
  );
}

describe('CoordinatorServer', () => {
  it('forms a generation from heartbeats and reports a rank that stops beating within 4.5 s (timeout + one judging tick)', {
    timeout: 30_000,
  }, async (t) => {
    const lost: { verdict: RankVerdict; at: number }[] = [];
    const server = new CoordinatorServer({
      runId: 'run-a',
      onLost: (verdict) => lost.push({ verdict, at: performance.now() }),
    });
    const address = await server.start({ host: '127.0.0.1', port: 0 });
    const links = [0, 1].map((rank) => startHeartbeats({ address, runId: 'run-a', rank, beat: idle(rank) }));
    try {
      assert.equal(server.watchedGeneration(), null, 'nothing formed yet');
      const peers = await server.formGeneration(2, 4, 10_000);
      assert.deepEqual(peers, ['127.0.0.1:7100', '127.0.0.1:7101']);
      assert.equal(server.watchedGeneration(), 4);
      links[1].close(); // rank 1 goes silent (as a frozen or dead process would)
      const stopped = performance.now();
      while (lost.length === 0 && performance.now() - stopped < 15_000)
        await new Promise((r) => setTimeout(r, 50));
      assert.equal(lost.length, 1, 'one verdict');
      const { verdict, at } = lost[0];
      assert.equal(verdict.rank, 1);
      assert.equal(verdict.cause, 'silent');
      assert.equal(verdict.generation, 4, 'lost from the generation formed');
      const afterMs = at - stopped;
      // Its last beat was at most one interval before the stop; the judge ticks every second.
      assert.ok(
        afterMs >= DEFAULT_TIMINGS.heartbeatTimeoutMs - DEFAULT_TIMINGS.heartbeatIntervalMs,
        `${afterMs}`,
      );
      assert.ok(
        afterMs <= DEFAULT_TIMINGS.heartbeatTimeoutMs + 500,
        `reported ${afterMs.toFixed(0)} ms after the last beat`,
      );
      t.diagnostic(`rank 1 reported lost ${(afterMs / 1000).toFixed(2)} s after its heartbeats stopped`);
      assert.deepEqual(
        lost.map((l) => l.verdict.rank),
        [1],
        'rank 0, still beating, is never reported',
      );
    } finally {
      for (const l of links) l.close();
      await server.close();
    }
  });

  it('answers bad heartbeats (fields, garbage bytes, oversized) with one clear status, and keeps serving', async () => {
    const server = new CoordinatorServer({ runId: 'run-b', tickMs: 0 });
    const address = await server.start({ host: '127.0.0.1', port: 0 });
    const client = new CoordinatorServiceClient(address, grpc.credentials.createInsecure());
    const good = {
      runId: 'run-b',
      rank: 0,
      state: 3,
      ringAddress: 'h:1',
      incarnation: '0123abcd',
      progressAgeMs: 0,
    };
    try {
      const cases: [bbn.v1.HeartbeatRequest.$Properties, grpc.status, RegExp][] = [
        [
          { ...good, runId: 'other' },
          grpc.status.NOT_FOUND,
          /run_id \("other"\) is not this coordinator's run/,
        ],
        [{ ...good, rank: 99_999 }, grpc.status.INVALID_ARGUMENT, /rank \(99999\) must be in 0\.\.4095/],
        [{ ...good, state: 42 }, grpc.status.INVALID_ARGUMENT, /state \(42\) is not a rank state/],
        [
          { ...good, ringAddress: 'no port' },
          grpc.status.INVALID_ARGUMENT,
          /ring_address \("no port"\) must be host:port/,
        ],
        [{ ...good, progressAgeMs: Number.NaN }, grpc.status.INVALID_ARGUMENT, /progress_age_ms \(NaN\)/],
        [
          { ...good, incarnation: '' },
          grpc.status.INVALID_ARGUMENT,
          /incarnation \(""\) must be 8-64 hex digits/,
        ],
      ];
      for (const [req, code, message] of cases) {
        await assert.rejects(call(client, req), (err: grpc.ServiceError) => {
          assert.equal(err.code, code);
          assert.match(err.details, message);
          return true;
        });
      }
      // Bytes that are no HeartbeatRequest, and a request over the size limit, on the same method.
      const raw = new grpc.Client(address, grpc.credentials.createInsecure());
      const send = (bytes: Buffer) =>
        new Promise<grpc.ServiceError | null>((resolve) =>
          raw.makeUnaryRequest(
            '/bbn.v1.CoordinatorService/Heartbeat',
            (b: Buffer) => b,
            (b: Buffer) => b,
            bytes,
            (err) => resolve(err),
          ),
        );
      try {
        const garbage = await send(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x34]));
        assert.equal(garbage?.code, grpc.status.INTERNAL, 'an undecodable request is refused');
        const oversized = await send(Buffer.alloc(2 * 1024 * 1024, 0x0a));
        assert.equal(oversized?.code, grpc.status.RESOURCE_EXHAUSTED, 'an oversized request is refused');
      } finally {
        raw.close();
      }
      const res = await call(client, good);
      assert.equal(res.heartbeatIntervalMs, 1_000);
      assert.equal(res.heartbeatTimeoutMs, 4_000);
      assert.deepEqual(
        server.board.snapshot().map((s) => s.beat.rank),
        [0],
        'only the good heartbeat was recorded',
      );
    } finally {
      client.close();
      await server.close();
    }
  });

  it("with a run token, a heartbeat without it or with another run's is refused UNAUTHENTICATED and not recorded", async () => {
    const token = RunToken.generate();
    const server = new CoordinatorServer({ runId: 'run-t', tickMs: 0, token });
    const address = await server.start({ host: '127.0.0.1', port: 0 });
    const client = new CoordinatorServiceClient(address, grpc.credentials.createInsecure());
    const req = {
      runId: 'run-t',
      rank: 0,
      state: 3,
      ringAddress: 'h:1',
      incarnation: '0123abcd',
      progressAgeMs: 0,
    };
    const send = (metadata: grpc.Metadata) =>
      new Promise<void>((resolve, reject) =>
        client.heartbeat(req, metadata, (err) => (err ? reject(err) : resolve())),
      );
    try {
      for (const [metadata, why] of [
        [new grpc.Metadata(), /has no run token/],
        [RunToken.generate().metadata(), /has the wrong run token/],
      ] as const) {
        await assert.rejects(send(metadata), (err: grpc.ServiceError) => {
          assert.equal(err.code, grpc.status.UNAUTHENTICATED);
          assert.match(err.details, why);
          return true;
        });
      }
      assert.deepEqual(server.board.snapshot(), [], 'nothing recorded from an unauthenticated caller');
      const link = startHeartbeats({ address, runId: 'run-t', rank: 0, beat: idle(0), token });
      try {
        assert.deepEqual(
          await server.formGeneration(1, 0, 10_000),
          ['127.0.0.1:7100'],
          'the token holder is heard',
        );
      } finally {
        link.close();
      }
    } finally {
      client.close();
      await server.close();
    }
  });

  it('a rendezvous that cannot complete names the missing ranks; close fails a pending one', async () => {
    const server = new CoordinatorServer({ runId: 'run-c', tickMs: 0 });
    const address = await server.start({ host: '127.0.0.1', port: 0 });
    const link = startHeartbeats({ address, runId: 'run-c', rank: 0, beat: idle(0) });
    try {
      const forming = assert.rejects(server.formGeneration(3, 0, 3_000), (err: Error) => {
        assert.ok(err instanceof RendezvousTimeoutError);
        assert.deepEqual(err.missing, [1, 2]);
        assert.match(err.message, /ranks 1, 2 sent no heartbeat within 3 s/);
        return true;
      });
      // While it waits, the missing ranks are named (rank 0 beats again within a second).
      const until = performance.now() + 2_500;
      while (server.waitingFor().join() !== '1,2' && performance.now() < until) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(server.waitingFor(), [1, 2]);
      await forming;
      assert.deepEqual(server.waitingFor(), [], 'no rendezvous, nobody waited for');
      const pending = assert.rejects(server.formGeneration(2, 0, 60_000), /the coordinator closed/);
      await server.close();
      await pending;
    } finally {
      link.close();
      await server.close();
    }
  });

  it('a rendezvous that waits names the missing ranks after 10 s (the shipped notice), and forms once they come', {
    timeout: 30_000,
  }, async () => {
    const notices: { generation: number; missing: readonly number[]; waitedMs: number; at: number }[] = [];
    const server = new CoordinatorServer({
      runId: 'run-w',
      tickMs: 0,
      onWaiting: (n) => notices.push({ ...n, missing: [...n.missing], at: performance.now() }),
    });
    const address = await server.start({ host: '127.0.0.1', port: 0 });
    const links = [startHeartbeats({ address, runId: 'run-w', rank: 0, beat: idle(0) })];
    try {
      const t0 = performance.now();
      const forming = server.formGeneration(2, 7, 120_000);
      while (notices.length === 0 && performance.now() - t0 < 15_000)
        await new Promise((r) => setTimeout(r, 50));
      assert.equal(notices.length, 1, 'one notice by 15 s');
      const [first] = notices;
      assert.deepEqual([first.generation, first.missing], [7, [1]]);
      assert.ok(
        first.waitedMs >= WAIT_NOTICE_MS - 5 && first.at - t0 < WAIT_NOTICE_MS + 1_000,
        `${first.waitedMs} ms`,
      );
      links.push(startHeartbeats({ address, runId: 'run-w', rank: 1, beat: idle(1) }));
      assert.deepEqual(await forming, ['127.0.0.1:7100', '127.0.0.1:7101']);
      assert.equal(notices.length, 1, 'no notice once formed');
    } finally {
      for (const l of links) l.close();
      await server.close();
    }
  });

  it('a coordinator started again mid-epoch adopts the generation in flight: a rank frozen meanwhile is reported within 4.5 s', {
    timeout: 30_000,
  }, async () => {
    const lost: { verdict: RankVerdict; at: number }[] = [];
    // The restarted process: no rendezvous ran here. Rank 0 trains and beats; rank 1 froze (silent).
    const server = new CoordinatorServer({
      runId: 'run-e',
      onLost: (verdict) => lost.push({ verdict, at: performance.now() }),
    });
    const address = await server.start({ host: '127.0.0.1', port: 0 });
    const training = () => ({ ...idle(0)(), phase: 'training' as const });
    let link = startHeartbeats({ address, runId: 'run-e', rank: 0, beat: idle(0) });
    try {
      while (server.board.snapshot().length === 0) await new Promise((r) => setTimeout(r, 20));
      assert.equal(server.adopt(2, 0), false, 'no rank trains: a generation may still be forming');
      link.close();
      link = startHeartbeats({ address, runId: 'run-e', rank: 0, beat: training });
      while (!server.board.snapshot().some((h) => h.beat.phase === 'training'))
        await new Promise((r) => setTimeout(r, 20));
      const forming = server.formGeneration(2, 0, 60_000).catch((err: Error) => err.message);
      assert.equal(server.adopt(2, 0), false, 'a rendezvous in progress keeps its own watch');
      await server.close();
      assert.equal(await forming, 'the coordinator closed');
    } finally {
      link.close();
    }
    // Again, with no rendezvous in progress: the watch is taken once, and rank 1 is judged from then on.
    const again = new CoordinatorServer({
      runId: 'run-e',
      onLost: (verdict) => lost.push({ verdict, at: performance.now() }),
    });
    const address2 = await again.start({ host: '127.0.0.1', port: 0 });
    link = startHeartbeats({ address: address2, runId: 'run-e', rank: 0, beat: training });
    try {
      while (!again.board.snapshot().some((h) => h.beat.phase === 'training'))
        await new Promise((r) => setTimeout(r, 20));
      assert.equal(again.watchedGeneration(), null);
      assert.equal(again.adopt(2, 3), true);
      const adopted = performance.now();
      assert.equal(again.adopt(2, 3), false, 'taken once');
      assert.equal(again.watchedGeneration(), 3);
      while (lost.length === 0 && performance.now() - adopted < 15_000)
        await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(
        lost.map((l) => [l.verdict.rank, l.verdict.cause, l.verdict.generation]),
        [[1, 'silent', 3]],
      );
      const afterMs = lost[0].at - adopted;
      assert.ok(
        afterMs >= DEFAULT_TIMINGS.heartbeatTimeoutMs && afterMs <= DEFAULT_TIMINGS.heartbeatTimeoutMs + 500,
        `rank 1 reported ${afterMs.toFixed(0)} ms after the adoption`,
      );
    } finally {
      link.close();
      await again.close();
    }
  });
});
