/**
 * Runs a model test suite once per tfjs backend that actually loads here.
 *
 * `cpu` (pure JS, part of @tensorflow/tfjs) always loads. `tensorflow` (@tensorflow/tfjs-node,
 * native TF) runs when its native library loads. A backend that does not load gets a suite whose
 * title says NOT AVAILABLE and why, with no tests in it: nothing is counted as passed for it. Set
 * `BBN_TEST_REQUIRE_BACKENDS=tensorflow` (comma list) where a backend must be there (e.g. on CI
 * with native TF installed): then its absence is a failing test.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';

/** Backends these suites know how to load. */
export type BackendName = 'cpu' | 'tensorflow';

/** Whether a backend loaded, and if not, why. */
export interface BackendProbe {
  readonly name: BackendName;
  readonly available: boolean;
  readonly reason: string;
}

const probes = new Map<BackendName, Promise<BackendProbe>>();

async function load(name: BackendName): Promise<BackendProbe> {
  try {
    if (name === 'tensorflow') await import('@tensorflow/tfjs-node');
    if (!tf.findBackendFactory(name))
      return { name, available: false, reason: `no '${name}' backend registered` };
    const ok = await tf.setBackend(name);
    if (!ok) return { name, available: false, reason: `tf.setBackend('${name}') failed` };
    return { name, available: true, reason: '' };
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    return { name, available: false, reason: msg };
  }
}

/** Loads (once per process) and reports each backend. */
export async function probeBackends(names: readonly BackendName[]): Promise<BackendProbe[]> {
  const out: BackendProbe[] = [];
  for (const n of names) {
    let p = probes.get(n);
    if (!p) {
      p = load(n);
      probes.set(n, p);
    }
    out.push(await p);
  }
  // Loading tfjs-node makes it the default; suites set their backend explicitly anyway.
  await tf.setBackend('cpu');
  return out;
}

function required(): Set<string> {
  return new Set(
    (process.env.BBN_TEST_REQUIRE_BACKENDS ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
}

/**
 * Registers `suite` once per available backend, inside a describe that switches to it. Call with
 * the result of `probeBackends` (top-level await in the test file).
 */
export function forEachBackend(
  backends: readonly BackendProbe[],
  title: string,
  suite: (backend: BackendName) => void,
): void {
  const must = required();
  for (const b of backends) {
    if (!b.available) {
      if (must.has(b.name)) {
        describe(`${title} [${b.name}]`, () => {
          it('backend is required by BBN_TEST_REQUIRE_BACKENDS and must load', () => {
            assert.fail(`backend ${b.name} did not load: ${b.reason}`);
          });
        });
      } else {
        // No tests: the report shows the backend was not exercised, and why.
        describe(`${title} [${b.name}: NOT AVAILABLE, suite not run: ${b.reason}]`, () => {});
      }
      continue;
    }
    describe(`${title} [${b.name}]`, () => {
      before(async () => {
        assert.ok(await tf.setBackend(b.name), `setBackend(${b.name})`);
      });
      suite(b.name);
    });
  }
}
