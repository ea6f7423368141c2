/**
 * The two data transports of the ring (gRPC call, raw TCP beside it) must be interchangeable:
 * the same sums bit for bit, the same refusals, and a data port that survives garbage. The
 * failure behaviour of the default transport is covered by ring-control, ring-process and
 * ring-keepalive; the other one's by the cases here.
 */
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
  type RingTransport,
  type WireCompression,
} from '../../src/collective/index.ts';
import { type FaultInjector, kFaultInjector } from '../../src/collective/internal.ts';
import { firstBitDifference, rankData, ringOrderSum } from './ring-data.ts';
import { allreduceAll, startLocalRing } from './ring-harness.ts';

const TRANSPORTS: readonly RingTransport[] = ['grpc', 'tcp'];

/** Every rank's result of one allreduce of seeded inputs over `transport`. */
async function sums(
  transport: RingTransport,
  W: number,
  n: number,
  chunkBytes: number,
  compress: WireCompression,
): Promise<{ inputs: Float32Array[]; outputs: Float32Array[] }> {
  const ring = await startLocalRing(W, { transport, chunkBytes, compress });
  try {
    const inputs = ring.rings.map((_, r) => rankData(`transport-${W}-${n}`, r, n));
    const outputs = inputs.map((x) => Float32Array.from(x));
    // Two allreduces on the same ring: the second starts while frames of the first may be in flight.
    const first = inputs.map((x) => Float32Array.from(x));
    const results = [
      ...(await allreduceAll(ring.rings, first, { epoch: 1, step: 0, bf16Elements: n })),
      ...(await allreduceAll(ring.rings, outputs, { epoch: 1, step: 1, bf16Elements: n })),
    ];
    for (const res of results) assert.ok(res.ok, !res.ok ? res.error.stack : '');
    return { inputs, outputs };
  } finally {
    await ring.close();
  }
}

describe('ring allreduce - gRPC and raw-TCP data transports', () => {
  it('give the same sums bit for bit (float32 and bf16 wire, several W, lengths and chunk sizes)', {
    timeout: 60_000,
  }, async () => {
    const cases: Array<[number, number, number, WireCompression]> = [
      [2, 1009, 4096, 'none'],
      [3, 60_001, 4096, 'none'],
      [4, 250_003, 1 << 20, 'none'],
      [3, 1, 1 << 20, 'none'],
      [3, 100_001, 8192, 'bf16'],
    ];
    for (const [W, n, chunkBytes, compress] of cases) {
      const [viaGrpc, viaTcp] = [
        await sums('grpc', W, n, chunkBytes, compress),
        await sums('tcp', W, n, chunkBytes, compress),
      ];
      const exact = ringOrderSum(viaGrpc.inputs, compress === 'bf16');
      for (let r = 0; r < W; r++) {
        for (const [name, out] of [
          ['grpc', viaGrpc.outputs[r]],
          ['tcp', viaTcp.outputs[r]],
        ] as const) {
          const at = firstBitDifference(out, exact);
          assert.equal(at, -1, `W=${W} n=${n} ${compress} ${name} rank ${r}: element ${at}`);
        }
      }
    }
  });

  it('counts frames and bytes alike on both transports', { timeout: 20_000 }, async () => {
    const counts = [];
    for (const transport of TRANSPORTS) {
      const ring = await startLocalRing(3, { transport, chunkBytes: 4096 });
      try {
        const data = ring.rings.map(() => new Float32Array(10_000).fill(1));
        assert.ok((await allreduceAll(ring.rings, data, { epoch: 0, step: 0 })).every((r) => r.ok));
        const s = ring.rings[0].stats();
        counts.push({ framesSent: s.framesSent, framesReceived: s.framesReceived });
      } finally {
        await ring.close();
      }
    }
    assert.deepEqual(counts[0], counts[1]);
    assert.ok(counts[0].framesSent > 4);
  });

  it('refuses a neighbour that uses the other transport, naming the field', { timeout: 20_000 }, async () => {
    const servers = await Promise.all(
      [0, 1].map(() => CollectiveServer.listen({ host: '127.0.0.1', port: 0 })),
    );
    const peers = servers.map((s) => s.address);
    try {
      const results = await Promise.allSettled(
        TRANSPORTS.map((transport, rank) =>
          RingAllreduce.create({
            runId: 'mixed',
            generation: 1,
            rank,
            worldSize: 2,
            peers,
            server: servers[rank],
            transport,
            connectTimeoutMs: 10_000,
          }),
        ),
      );
      const errors = results.map((r) => (r.status === 'rejected' ? (r.reason as Error) : assert.fail()));
      const rejected = errors.find((e) => e instanceof PeerRejectedError) as PeerRejectedError | undefined;
      assert.ok(rejected, errors.map((e) => e.message).join(' | '));
      assert.equal(rejected.code, grpc.status.FAILED_PRECONDITION);
      assert.match(rejected.message, /data_transport "(grpc|tcp)", this ring has "(tcp|grpc)"/);
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
  });

  for (const transport of TRANSPORTS) {
    it(`${transport}: an oversize frame is a protocol error naming its sender`, {
      timeout: 20_000,
    }, async () => {
      const oversize: FaultInjector = {
        beforeSend: (site, frame) =>
          site.frameIndex === 0 ? Buffer.concat([frame, Buffer.alloc(200_000)]) : frame,
      };
      const ring = await startLocalRing(2, {
        transport,
        chunkBytes: 4096,
        perRank: (rank) => (rank === 0 ? { [kFaultInjector]: oversize } : {}),
      });
      try {
        const data = ring.rings.map(() => new Float32Array(10_000));
        const [r0, r1] = await allreduceAll(ring.rings, data, { epoch: 0, step: 0 });
        assert.ok(!r1.ok && r1.error instanceof ProtocolError, !r1.ok ? r1.error.stack : 'rank 1');
        assert.equal(r1.error.peerRank, 0);
        assert.match(r1.error.message, /rank 0 \(127\.0\.0\.1:\d+\) sent an oversize frame/);
        assert.ok(!r0.ok && r0.error instanceof RingAbortedError && r0.error.originRank === 1);
      } finally {
        await ring.close();
      }
    });

    it(`${transport}: a neighbour that stops sending mid-allreduce and closes is named by every rank`, {
      timeout: 20_000,
    }, async () => {
      // Rank 1 stalls its sends (frames of allreduce #0 held back), then its process "dies":
      // its ring is closed without finishing; ranks 0 and 2 must fail naming rank 1.
      let stalled!: () => void;
      const atStall = new Promise<void>((resolve) => {
        stalled = resolve;
      });
      const stall: FaultInjector = {
        beforeSend: (site, frame) => {
          if (site.frameIndex < 2) return frame;
          stalled();
          return 'stall';
        },
      };
      const ring = await startLocalRing(3, {
        transport,
        chunkBytes: 4096,
        perRank: (rank) => (rank === 1 ? { [kFaultInjector]: stall } : {}),
      });
      try {
        const data = ring.rings.map(() => new Float32Array(30_000).fill(1));
        const pending = allreduceAll(ring.rings, data, { epoch: 0, step: 0 });
        await atStall;
        await ring.servers[1].close();
        await ring.rings[1].close();
        const results = await pending;
        for (const r of [0, 2]) {
          const res = results[r];
          assert.ok(!res.ok, `rank ${r} should fail`);
          assert.ok(
            res.error instanceof PeerLostError || res.error instanceof RingAbortedError,
            `rank ${r}: ${res.error.stack}`,
          );
          assert.match(res.error.message, /rank 1 \(127\.0\.0\.1:\d+\)/, `rank ${r}`);
        }
      } finally {
        await ring.close();
      }
    });
  }

  it('the data port drops garbage and unknown tokens and keeps serving rings', {
    timeout: 20_000,
  }, async () => {
    const servers = await Promise.all(
      [0, 1].map(() => CollectiveServer.listen({ host: '127.0.0.1', port: 0 })),
    );
    try {
      const { port } = await servers[0].dataListener();
      for (const junk of [
        Buffer.from('GET / HTTP/1.1\r\n\r\n\x00\xff garbage garbage'),
        Buffer.concat([Buffer.from('BBNT'), Buffer.alloc(16, 7), Buffer.alloc(100, 1)]),
      ]) {
        await new Promise<void>((resolve) => {
          const sock = net.connect(port, '127.0.0.1', () => sock.write(junk));
          sock.on('error', () => {});
          sock.on('close', () => resolve());
          sock.resume();
        });
      }
      const peers = servers.map((s) => s.address);
      const rings = await Promise.all(
        servers.map((server, rank) =>
          RingAllreduce.create({
            runId: 'after',
            generation: 1,
            rank,
            worldSize: 2,
            peers,
            server,
            transport: 'tcp',
          }),
        ),
      );
      const data = [Float32Array.of(1, 2), Float32Array.of(10, 20)];
      assert.ok((await allreduceAll(rings, data, { epoch: 0, step: 0 })).every((r) => r.ok));
      assert.deepEqual(Array.from(data[1]), [11, 22]);
      await Promise.all(rings.map((r) => r.close()));
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
  });
});
