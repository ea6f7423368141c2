/**
 * Ring authentication (src/auth/run-token.ts on the peer server and the upstream call): a ring
 * whose ranks share the run token works; a rank with another run's token is refused at once with
 * one error naming the peer on both sides; a separate process without the token, or with a wrong
 * one, gets UNAUTHENTICATED before its hello or frames are read, and the servers keep serving.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { RunToken } from '../../src/auth/run-token.ts';
import { CollectiveServer, PeerRejectedError, RingAllreduce } from '../../src/collective/index.ts';
import { allreduceAll } from './ring-harness.ts';

const INTRUDER = join(import.meta.dirname, 'ring-intruder.ts');

/** W peer servers on 127.0.0.1:0, each checking `tokens[rank]`. */
function servers(tokens: (RunToken | undefined)[]): Promise<CollectiveServer[]> {
  return Promise.all(
    tokens.map((token) => CollectiveServer.listen({ host: '127.0.0.1', port: 0 }, { token })),
  );
}

function ring(srv: CollectiveServer[], tokens: (RunToken | undefined)[], connectTimeoutMs = 10_000) {
  const peers = srv.map((s) => s.address);
  return srv.map((server, rank) =>
    RingAllreduce.create({
      runId: 'auth-run',
      generation: 1,
      rank,
      worldSize: srv.length,
      peers,
      server,
      chunkBytes: 4096,
      connectTimeoutMs,
      token: tokens[rank],
    }),
  );
}

/** Runs the intruder process against `address` (asynchronously: the servers are in this process); its final status. */
function intrude(
  address: string,
  token?: string,
): Promise<{ code: number; details: string; replies: number }> {
  const env = { ...process.env };
  if (token) env.INTRUDER_TOKEN = token;
  const child = spawn(process.execPath, ['--import', 'tsx', INTRUDER, address, 'auth-run'], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d;
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`intruder exited ${code}`)),
    );
  });
}

describe('ring authentication - the run token on every edge', () => {
  it('ranks sharing the token form the ring and sum; outsiders are refused before their hello is read', {
    timeout: 60_000,
  }, async () => {
    const token = RunToken.generate();
    const srv = await servers([token, token, token]);
    try {
      const made = await Promise.allSettled(ring(srv, [token, token, token]));
      const rings = made.map((m) => (m.status === 'fulfilled' ? m.value : assert.fail(String(m.reason))));
      const out = await allreduceAll(
        rings,
        rings.map((_, r) => new Float32Array([r + 1, 10 * (r + 1)])),
        { epoch: 1, step: 1 },
      );
      assert.ok(out.every((o) => o.ok));

      // A process without the token: refused, nothing answered, its frames never read.
      const none = await intrude(srv[0].address);
      assert.equal(none.code, grpc.status.UNAUTHENTICATED);
      assert.match(none.details, /^ring peer server 127\.0\.0\.1:\d+: call from .*:\d+ has no run token/);
      assert.equal(none.replies, 0);
      // With another run's token: refused alike, named as the wrong token.
      const wrong = await intrude(srv[1].address, RunToken.generate().reveal());
      assert.equal(wrong.code, grpc.status.UNAUTHENTICATED);
      assert.match(wrong.details, /call from .* has the wrong run token/);
      assert.doesNotMatch(wrong.details, new RegExp(token.reveal()), 'the token is never in a message');

      // The ring kept serving through both.
      const again = await allreduceAll(
        rings,
        rings.map(() => new Float32Array([1, 1])),
        { epoch: 1, step: 2 },
      );
      assert.ok(again.every((o) => o.ok));
      await Promise.all(rings.map((r) => r.close()));
    } finally {
      await Promise.all(srv.map((s) => s.close()));
    }
  });

  it("a rank with another run's token is refused at once, the error naming the peer that refused it", {
    timeout: 60_000,
  }, async () => {
    const token = RunToken.generate();
    const other = RunToken.generate();
    const srv = await servers([token, token]);
    try {
      const started = performance.now();
      const attempts = ring(srv, [token, other], 5_000);
      // Rank 1 (the one with the wrong token) fails on its first call, not at the set-up timeout.
      await attempts[1].catch(() => {});
      const seconds = (performance.now() - started) / 1000;
      const made = await Promise.allSettled(attempts);
      const rejected = made.flatMap((m) => (m.status === 'rejected' ? [m.reason as Error] : []));
      const refusedByPeer = rejected.find((e) => e instanceof PeerRejectedError) as
        | PeerRejectedError
        | undefined;
      assert.ok(refusedByPeer, rejected.map((e) => e.message).join(' | '));
      assert.equal(refusedByPeer.code, grpc.status.UNAUTHENTICATED);
      assert.match(
        refusedByPeer.message,
        /^rank 1: rank 0 \(127\.0\.0\.1:\d+\) refused the ring call \(UNAUTHENTICATED: ring peer server 127\.0\.0\.1:\d+: call from .* has the wrong run token/,
      );
      assert.ok(seconds < 5, `refused at once, not after the set-up timeout (${seconds.toFixed(1)} s)`);
      for (const m of made) if (m.status === 'fulfilled') await m.value.close();
    } finally {
      await Promise.all(srv.map((s) => s.close()));
    }
  });
});
