import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const child = fileURLToPath(new URL('./threaded-child.ts', import.meta.url));

describe('wasm threaded backend', () => {
  it('switches to a 2-thread XNNPACK pool in Node, computes cpu-equal results (stock fallbacks too) and lets the process exit', async () => {
    // A hung pool would keep the child alive: the timeout turns that into a failure.
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', child, '2'], {
      timeout: 60_000,
    });
    const line = stdout.trim().split('\n').at(-1) ?? '';
    const result = JSON.parse(line) as { threads: number; binary: string; rel: number };
    assert.equal(result.threads, 2);
    assert.equal(result.binary, 'threaded-simd');
    assert.ok(result.rel < 1e-5, `relative error ${result.rel}`);
  });
});
