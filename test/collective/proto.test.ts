import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { generate, protoFiles } from '../../scripts/gen-proto.ts';
import type { bbn } from '../../src/generated/bbn.js';
import {
  CollectiveServiceDefinition,
  CoordinatorServiceClient,
  CoordinatorServiceDefinition,
  type CoordinatorServiceHandlers,
} from '../../src/generated/bbn-grpc.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BUF = path.join(ROOT, 'node_modules', '.bin', 'buf');

function buf(...args: string[]): string {
  return execFileSync(BUF, args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('wire contracts (proto/bbn/v1)', () => {
  it('pass buf lint (STANDARD and COMMENTS rules) and buf format', () => {
    assert.equal(buf('lint', 'proto'), '');
    assert.equal(buf('format', '--diff', '--exit-code', 'proto'), '');
  });

  it('have committed generated code identical to a fresh generation', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bbn-gen-proto-'));
    try {
      const written = await generate(dir);
      assert.deepEqual(written.sort(), ['bbn-grpc.ts', 'bbn.d.ts', 'bbn.js']);
      for (const name of written) {
        const fresh = readFileSync(path.join(dir, name), 'utf8');
        const committed = readFileSync(path.join(ROOT, 'src', 'generated', name), 'utf8');
        assert.ok(
          fresh === committed,
          `src/generated/${name} is stale: run \`node --import tsx scripts/gen-proto.ts\``,
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('define the collective and coordinator services of package bbn.v1', () => {
    assert.deepEqual(protoFiles(), ['bbn/v1/collective.proto', 'bbn/v1/coordinator.proto']);
    assert.equal(CollectiveServiceDefinition.ring.path, '/bbn.v1.CollectiveService/Ring');
    assert.ok(
      CollectiveServiceDefinition.ring.requestStream && CollectiveServiceDefinition.ring.responseStream,
    );
    const coordinator = Object.values(CoordinatorServiceDefinition).map(
      (m) => `${m.originalName}:${m.requestStream ? 's' : 'u'}${m.responseStream ? 's' : 'u'}`,
    );
    assert.deepEqual(coordinator.sort(), [
      'GetEpochPlan:uu',
      'Heartbeat:uu',
      'Join:uu',
      'Leave:uu',
      'ReportChecksum:uu',
      'StreamShard:us',
      'WatchEpochs:us',
    ]);
  });

  it('serve and call the coordinator through the generated grpc-js stubs', { timeout: 20_000 }, async () => {
    const unimplemented = (_call: unknown, cb: grpc.sendUnaryData<never>): void =>
      cb({ code: grpc.status.UNIMPLEMENTED, details: 'not in this test' });
    const handlers: CoordinatorServiceHandlers = {
      join: (call, cb) =>
        cb(null, {
          runId: call.request.runId,
          generation: 3,
          rank: call.request.rank ?? 7,
          worldSize: 2,
          members: [
            { rank: 0, address: 'a:1' },
            { rank: 1, address: call.request.address },
          ],
        }),
      streamShard: (call) => {
        for (let step = call.request.fromStep; step < 3; step++) {
          call.write({
            epoch: call.request.epoch,
            step,
            uniformIndex: [step, -1, 2 ** 31 - 1],
            reversedIndex: [9],
          });
        }
        call.end();
      },
      getEpochPlan: (call, cb) =>
        cb(null, { plan: { epoch: call.request.epoch, alpha: 1 - (1 / 200) ** 2, lr: 0.1 } }),
      heartbeat: unimplemented,
      leave: unimplemented,
      reportChecksum: unimplemented,
      watchEpochs: (call) => call.end(),
    };
    const server = new grpc.Server();
    server.addService(CoordinatorServiceDefinition, handlers);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const client = new CoordinatorServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const joined = await new Promise<bbn.v1.JoinResponse>((resolve, reject) =>
        client.join({ runId: 'r', rank: 1, address: 'b:2' }, (e, res) => (e ? reject(e) : resolve(res!))),
      );
      assert.equal(joined.rank, 1, 'an explicit rank 1 (optional field) survives the round trip');
      assert.deepEqual(
        joined.members.map((m) => m.address),
        ['a:1', 'b:2'],
      );
      const plan = await new Promise<bbn.v1.GetEpochPlanResponse>((resolve, reject) =>
        client.getEpochPlan({ epoch: 2 }, (e, res) => (e ? reject(e) : resolve(res!))),
      );
      assert.equal(plan.plan?.alpha, 1 - (1 / 200) ** 2, 'alpha travels as an exact double');
      const steps: Array<{ step: number; uniform: number[] }> = [];
      for await (const msg of client.streamShard({ epoch: 5, fromStep: 1 })) {
        steps.push({ step: msg.step, uniform: msg.uniformIndex });
      }
      assert.deepEqual(steps, [
        { step: 1, uniform: [1, -1, 2 ** 31 - 1] },
        { step: 2, uniform: [2, -1, 2 ** 31 - 1] },
      ]);
      await assert.rejects(
        new Promise((resolve, reject) => client.leave({}, (e, res) => (e ? reject(e) : resolve(res)))),
        { code: grpc.status.UNIMPLEMENTED },
      );
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
