import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  CollectiveServer,
  PeerLostError,
  PeerRejectedError,
  ProtocolError,
  RingAbortedError,
  RingAllreduce,
  RingTimeoutError,
} from '../../src/collective/index.ts';
import {
  encodeRequest,
  type FaultInjector,
  kFaultInjector,
  RAW_RING_METHOD,
  type RawClientCall,
} from '../../src/collective/internal.ts';
import { allreduceAll, startLocalRing } from './ring-harness.ts';

/** A port with nothing listening on it. */
async function deadAddress(): Promise<string> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return `127.0.0.1:${port}`;
}

/** Opens a raw Ring call, sends `first`, and resolves with the call's final status. */
function ringCallStatus(address: string, first: Buffer): Promise<grpc.StatusObject> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const call = client.makeBidiStreamRequest(
    RAW_RING_METHOD.path,
    RAW_RING_METHOD.requestSerialize,
    RAW_RING_METHOD.responseDeserialize,
  ) as RawClientCall;
  return new Promise((resolve) => {
    call.on('error', () => {});
    call.on('data', () => {});
    call.on('status', (s) => {
      client.close();
      resolve(s);
    });
    call.write(first);
  });
}

describe('ring allreduce - aborts, timeouts and the peer server', () => {
  it('times out on a rank that never joins the allreduce and aborts every rank, naming it', {
    timeout: 20_000,
  }, async () => {
    const ring = await startLocalRing(3, {
      chunkBytes: 4096,
      // Rank 0 (downstream of the idle rank 2) times out first; rank 1 learns it from rank 0.
      perRank: (rank) => ({ timeoutMs: rank === 0 ? 300 : 10_000 }),
    });
    try {
      const data = ring.rings.map(() => new Float32Array(20_000));
      const t0 = performance.now();
      const results = await allreduceAll(ring.rings.slice(0, 2), data, { epoch: 3, step: 7 });
      const elapsed = performance.now() - t0;
      assert.ok(elapsed < 5_000, `took ${elapsed} ms`);
      const [r0, r1] = results.map((r) => (r.ok ? assert.fail('allreduce should fail') : r.error));
      assert.ok(r0 instanceof RingTimeoutError, r0.stack);
      assert.deepEqual(r0.waitingOn, [2]);
      assert.match(r0.message, /rank 0: allreduce #0 made no progress .* from rank 2 \(127\.0\.0\.1:\d+\)/);
      assert.ok(r1 instanceof RingAbortedError, r1.stack);
      assert.equal(r1.originRank, 0);
      assert.equal(r1.kind, 'timeout');
      assert.match(r1.message, /ring aborted by rank 0 .*rank 2/);
      // The idle rank learns it too (now, or from the frames it holds): its call fails, no hang.
      await assert.rejects(ring.rings[2].allreduce(data[2], { epoch: 3, step: 7 }), RingAbortedError);
    } finally {
      await ring.close();
    }
  });

  it('abort() on one rank stops the in-flight allreduce on every rank within a second', {
    timeout: 20_000,
  }, async () => {
    const ring = await startLocalRing(4, { chunkBytes: 4096 });
    try {
      const data = ring.rings.map(() => new Float32Array(50_000));
      const pending = allreduceAll(ring.rings.slice(0, 3), data, { epoch: 0, step: 1 });
      const t0 = performance.now();
      ring.rings[3].abort('coordinator declared rank 3 dead');
      const results = await pending;
      assert.ok(performance.now() - t0 < 1_000);
      for (const [r, res] of results.entries()) {
        assert.ok(!res.ok && res.error instanceof RingAbortedError, `rank ${r}`);
        assert.equal(res.error.originRank, 3);
        assert.match(res.error.message, /coordinator declared rank 3 dead/);
      }
      for (const r of ring.rings) {
        await assert.rejects(r.allreduce(new Float32Array(4), { epoch: 0, step: 2 }), /aborted/);
      }
    } finally {
      await ring.close();
    }
  });

  it('a ring aborted while idle fails every later allreduce at once on every rank; a new generation works', {
    timeout: 20_000,
  }, async () => {
    const ring = await startLocalRing(3, { chunkBytes: 4096 });
    try {
      const data = ring.rings.map(() => new Float32Array(10_000).fill(1));
      assert.ok((await allreduceAll(ring.rings, data, { epoch: 0, step: 0 })).every((r) => r.ok));
      ring.rings[1].abort('rank 1 gave up while idle');
      // Twice: while the abort may still be travelling to ranks 0 and 2, and after it arrived.
      for (const step of [1, 2]) {
        const t0 = performance.now();
        const results = await allreduceAll(ring.rings, data, { epoch: 0, step });
        const ms = performance.now() - t0;
        assert.ok(ms < 5_000, `step ${step}: the aborted ring answered after ${ms} ms`);
        for (const [r, res] of results.entries()) {
          assert.ok(!res.ok && res.error instanceof RingAbortedError, `rank ${r} step ${step}`);
          assert.equal(res.error.originRank, 1);
          assert.match(res.error.message, /rank 1 gave up while idle/);
        }
      }
      const next = await Promise.all(
        ring.servers.map((server, rank) =>
          RingAllreduce.create({
            runId: 'test-run',
            generation: 2,
            rank,
            worldSize: 3,
            peers: ring.peers,
            server,
          }),
        ),
      );
      try {
        const fresh = next.map(() => new Float32Array(10_000).fill(2));
        assert.ok((await allreduceAll(next, fresh, { epoch: 0, step: 3 })).every((r) => r.ok));
        assert.deepEqual(Array.from(fresh[0].subarray(0, 2)), [6, 6]);
      } finally {
        await Promise.all(next.map((r) => r.close()));
      }
    } finally {
      await ring.close();
    }
  });

  it('a rank that closes fails its neighbours at their next allreduce, not while they finish one', {
    timeout: 20_000,
  }, async () => {
    const ring = await startLocalRing(3);
    try {
      const data = ring.rings.map(() => new Float32Array(1000).fill(1));
      const ok = await allreduceAll(ring.rings, data, { epoch: 0, step: 0 });
      assert.ok(ok.every((r) => r.ok));
      assert.deepEqual(Array.from(data[2].subarray(0, 3)), [3, 3, 3]);
      await ring.rings[0].close();
      const results = await allreduceAll(ring.rings.slice(1), data.slice(1), { epoch: 0, step: 1 });
      for (const res of results) {
        assert.ok(!res.ok);
        assert.match(res.error.message, /rank 0 \(127\.0\.0\.1:\d+\) closed its ring edge/);
        assert.ok(
          res.error instanceof PeerLostError || res.error instanceof RingAbortedError,
          res.error.name,
        );
      }
      await assert.rejects(ring.rings[0].allreduce(data[0], { epoch: 0, step: 1 }), /ring is closed/);
    } finally {
      await ring.close();
    }
  });

  it('rejects an oversize frame as a protocol error naming its sender, and a second concurrent call', {
    timeout: 20_000,
  }, async () => {
    // Rank 0 pads its first frame of allreduce #0 far past the agreed chunk size.
    const oversize: FaultInjector = {
      beforeSend: (site, frame) =>
        site.frameIndex === 0 ? Buffer.concat([frame, Buffer.alloc(200_000)]) : frame,
    };
    const ring = await startLocalRing(2, {
      chunkBytes: 4096,
      perRank: (rank) => (rank === 0 ? { [kFaultInjector]: oversize } : {}),
    });
    try {
      const data = ring.rings.map(() => new Float32Array(10_000));
      const pending = allreduceAll(ring.rings, data, { epoch: 0, step: 0 });
      await assert.rejects(ring.rings[1].allreduce(new Float32Array(1), { epoch: 0, step: 1 }), {
        name: 'CollectiveConfigError',
        message: /while allreduce #0 is in flight/,
      });
      const [r0, r1] = await pending;
      assert.ok(!r1.ok && r1.error instanceof ProtocolError, !r1.ok ? r1.error.stack : 'rank 1 should fail');
      assert.equal(r1.error.peerRank, 0);
      assert.match(
        r1.error.message,
        /rank 0 \(127\.0\.0\.1:\d+\) sent an oversize frame.*(RESOURCE_EXHAUSTED|data message of \d+ bytes, limit \d+)/,
      );
      assert.ok(!r0.ok && r0.error instanceof RingAbortedError && r0.error.originRank === 1);
    } finally {
      await ring.close();
    }
  });

  it('set-up timeout lists the neighbours that never connected', { timeout: 20_000 }, async () => {
    const servers = await Promise.all(
      [0, 1].map(() => CollectiveServer.listen({ host: '127.0.0.1', port: 0 })),
    );
    const peers = [servers[0].address, servers[1].address, await deadAddress()];
    try {
      const results = await Promise.allSettled(
        [0, 1].map((rank) =>
          RingAllreduce.create({
            runId: 'r',
            generation: 1,
            rank,
            worldSize: 3,
            peers,
            server: servers[rank],
            connectTimeoutMs: 600,
          }),
        ),
      );
      const [e0, e1] = results.map((r) =>
        r.status === 'rejected' ? (r.reason as RingTimeoutError) : assert.fail(),
      );
      assert.ok(e0 instanceof RingTimeoutError && e1 instanceof RingTimeoutError);
      assert.deepEqual(e0.waitingOn, [2]);
      assert.match(
        e0.message,
        /rank 2 \(127\.0\.0\.1:\d+\) never accepted our call \(last error: UNAVAILABLE/,
      );
      assert.deepEqual(e1.waitingOn, [2]);
      assert.match(e1.message, /rank 2 \(127\.0\.0\.1:\d+\) never called us/);
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
  });

  it('refuses mismatched settings and stale generations with the gRPC status the contract names', {
    timeout: 20_000,
  }, async () => {
    const servers = await Promise.all(
      [0, 1].map(() => CollectiveServer.listen({ host: '127.0.0.1', port: 0 })),
    );
    const peers = servers.map((s) => s.address);
    try {
      const results = await Promise.allSettled([
        RingAllreduce.create({
          runId: 'r',
          generation: 5,
          rank: 0,
          worldSize: 2,
          peers,
          server: servers[0],
          chunkBytes: 4096,
          connectTimeoutMs: 800,
        }),
        RingAllreduce.create({
          runId: 'r',
          generation: 5,
          rank: 1,
          worldSize: 2,
          peers,
          server: servers[1],
          chunkBytes: 8192,
          connectTimeoutMs: 800,
        }),
      ]);
      const errors = results.map((r) =>
        r.status === 'rejected' ? (r.reason as Error) : assert.fail('create should fail'),
      );
      const rejected = errors.find((e) => e instanceof PeerRejectedError) as PeerRejectedError | undefined;
      assert.ok(rejected, errors.map((e) => e.message).join(' | '));
      assert.equal(rejected.code, grpc.status.FAILED_PRECONDITION);
      assert.match(rejected.message, /chunk_elements (1024|2048), this ring has (2048|1024)/);

      // A ring of generation 7 fences off callers of generation 6.
      const unregister = servers[0].register('r', 7, 0, {
        acceptDownstream: () => assert.fail('a stale hello must not reach the ring'),
      });
      const stale = encodeRequest({
        hello: { runId: 'r', generation: 6, worldSize: 2, rank: 1, upstreamRank: 0 },
      });
      const status = await ringCallStatus(servers[0].address, stale);
      assert.equal(status.code, grpc.status.FAILED_PRECONDITION);
      assert.match(status.details, /generation 6 is stale \(this server serves generation 7\)/);
      unregister();
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
  });

  it('the peer server survives garbage of every kind and keeps serving rings', {
    timeout: 20_000,
  }, async () => {
    const server = await CollectiveServer.listen({ host: '127.0.0.1', port: 0 });
    try {
      // Not HTTP/2 at all.
      await new Promise<void>((resolve) => {
        const sock = net.connect(server.port, '127.0.0.1', () =>
          sock.end(Buffer.from('GET / HTTP/1.1\r\n\r\n\x00\xff garbage')),
        );
        sock.on('error', () => {});
        sock.on('close', () => resolve());
        sock.resume();
      });
      const statuses = await Promise.all([
        ringCallStatus(server.address, Buffer.from([0xff, 0xff, 0xff, 0x07, 0x00])),
        ringCallStatus(server.address, encodeRequest({ abort: { message: 'hi' } })),
        ringCallStatus(
          server.address,
          encodeRequest({ hello: { runId: 'nobody', generation: 1, upstreamRank: 0 } }),
        ),
        ringCallStatus(server.address, Buffer.alloc(100_000)),
      ]);
      assert.deepEqual(
        statuses.map((s) => grpc.status[s.code]),
        ['INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'UNAVAILABLE', 'RESOURCE_EXHAUSTED'],
      );
      assert.match(statuses[0].details, /undecodable first message/);
      assert.match(statuses[1].details, /first message must be a hello/);

      // Still serving: a two-rank ring through this very server.
      const other = await CollectiveServer.listen({ host: '127.0.0.1', port: 0 });
      const peers = [server.address, other.address];
      const rings = await Promise.all(
        [server, other].map((s, rank) =>
          RingAllreduce.create({
            runId: 'after-garbage',
            generation: 1,
            rank,
            worldSize: 2,
            peers,
            server: s,
          }),
        ),
      );
      const data = [Float32Array.of(1, 2), Float32Array.of(10, 20)];
      const results = await allreduceAll(rings, data, { epoch: 0, step: 0 });
      assert.ok(results.every((r) => r.ok));
      assert.deepEqual(Array.from(data[0]), [11, 22]);
      await Promise.all(rings.map((r) => r.close()));
      await other.close();
    } finally {
      await server.close();
    }
  });
});
