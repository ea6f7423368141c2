/**
 * The run config's ring data transport (`distributed.transport`): its values, its default, and
 * the one line a bad value gets; and its chunk size (`distributed.chunkBytes`), whose default is
 * the ring's own.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_CHUNK_BYTES, resolveOptions } from '../../src/collective/options.ts';
import { applyOverrides, ConfigError, parseRunConfig } from '../../src/core/config.ts';

const BASE = { dataset: { kind: 'mnist' } };

describe('config - distributed.transport', () => {
  it('accepts grpc and tcp', () => {
    for (const t of ['grpc', 'tcp'] as const) {
      assert.equal(
        parseRunConfig(applyOverrides(BASE, [`distributed.transport=${t}`])).distributed.transport,
        t,
      );
    }
  });

  it('defaults to the shipped transport', () => {
    assert.equal(parseRunConfig(BASE).distributed.transport, 'tcp');
  });

  it('rejects anything else with one line naming the field and the choices', () => {
    assert.throws(
      () => parseRunConfig(applyOverrides(BASE, ['distributed.transport=udp']), 'run.yaml'),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.issues.length, 1);
        assert.match(err.issues[0], /^distributed\.transport: .*"grpc".*"tcp"/);
        return true;
      },
    );
  });
});

describe('config - distributed.chunkBytes', () => {
  const ring = (chunkBytes: number | undefined) =>
    resolveOptions({ runId: 'r', generation: 0, rank: 0, worldSize: 1, peers: ['127.0.0.1:1'], chunkBytes });

  it('leaves the chunk size to the ring by default: 4 MiB frames', () => {
    const cfg = parseRunConfig(BASE);
    assert.equal(cfg.distributed.chunkBytes, undefined);
    assert.equal(DEFAULT_CHUNK_BYTES, 4 * 1024 * 1024);
    assert.equal(ring(cfg.distributed.chunkBytes).chunkElements, DEFAULT_CHUNK_BYTES / 4);
  });

  it('passes a configured size through to the ring', () => {
    const cfg = parseRunConfig(applyOverrides(BASE, ['distributed.chunkBytes=1048576']));
    assert.equal(ring(cfg.distributed.chunkBytes).chunkElements, 1048576 / 4);
  });
});

describe('config - distributed.dataPlane', () => {
  it("defaults to 'auto', accepts native and js, and passes the choice to the ring", () => {
    assert.equal(parseRunConfig(BASE).distributed.dataPlane, 'auto');
    for (const p of ['auto', 'native', 'js'] as const) {
      const cfg = parseRunConfig(applyOverrides(BASE, [`distributed.dataPlane=${p}`]));
      assert.equal(cfg.distributed.dataPlane, p);
      const ring = resolveOptions({
        runId: 'r',
        generation: 0,
        rank: 0,
        worldSize: 1,
        peers: ['127.0.0.1:1'],
        dataPlane: cfg.distributed.dataPlane,
      });
      assert.equal(ring.dataPlane, p);
    }
  });

  it('rejects anything else with one line naming the field and the choices', () => {
    assert.throws(
      () => parseRunConfig(applyOverrides(BASE, ['distributed.dataPlane=gpu']), 'run.yaml'),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.issues.length, 1);
        assert.match(err.issues[0], /^distributed\.dataPlane: .*"auto".*"native".*"js"/);
        return true;
      },
    );
  });
});
