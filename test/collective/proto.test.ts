import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generate, protoFiles } from '../../scripts/gen-proto.ts';
import { CollectiveServiceDefinition, CoordinatorServiceDefinition } from '../../src/generated/bbn-grpc.ts';

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
    assert.deepEqual(coordinator.sort(), ['Heartbeat:uu']);
  });
});
