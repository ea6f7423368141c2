/**
 * The run config's ring data transport (`distributed.transport`): its values, its default, and
 * the one line a bad value gets.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
