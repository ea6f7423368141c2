import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CoreValueError, Rng } from '../../src/core/rng.ts';

describe('rng', () => {
  it('same seed gives the same stream, different seeds differ', () => {
    const a = Rng.fromSeed(42);
    const b = Rng.fromSeed(42);
    const c = Rng.fromSeed(43);
    const xs = Array.from({ length: 8 }, () => a.nextUint32());
    assert.deepEqual(
      xs,
      Array.from({ length: 8 }, () => b.nextUint32()),
    );
    assert.notDeepEqual(
      xs,
      Array.from({ length: 8 }, () => c.nextUint32()),
    );
  });

  it('split streams do not depend on draws from the parent', () => {
    const a = Rng.fromSeed('run');
    const b = Rng.fromSeed('run');
    for (let i = 0; i < 100; i++) b.nextUint32();
    assert.equal(a.split('epoch').split(3).nextUint32(), b.split('epoch').split(3).nextUint32());
    assert.notEqual(a.split('epoch').nextUint32(), a.split('augment').nextUint32());
  });

  it('state round-trips: a restored generator continues the same stream', () => {
    const a = Rng.fromSeed(7);
    for (let i = 0; i < 13; i++) a.random();
    const b = Rng.fromState(JSON.parse(JSON.stringify(a.state())));
    assert.deepEqual(
      Array.from({ length: 5 }, () => a.random()),
      Array.from({ length: 5 }, () => b.random()),
    );
  });

  it('random() lies in [0,1) with mean near 1/2, int(n) covers [0,n) evenly', () => {
    const r = Rng.fromSeed(1);
    let sum = 0;
    const counts = new Array(7).fill(0);
    const n = 200_000;
    for (let i = 0; i < n; i++) {
      const u = r.random();
      assert.ok(u >= 0 && u < 1);
      sum += u;
      counts[r.int(7)]++;
    }
    assert.ok(Math.abs(sum / n - 0.5) < 4 * Math.sqrt(1 / 12 / n));
    const p = 1 / 7;
    for (const c of counts) assert.ok(Math.abs(c / n - p) < 4 * Math.sqrt((p * (1 - p)) / n));
  });

  it('beta(0.2, 0.2) has mean 1/2 and the U shape of its distribution', () => {
    const r = Rng.fromSeed(5);
    const n = 100_000;
    let sum = 0;
    let extremes = 0;
    for (let i = 0; i < n; i++) {
      const x = r.beta(0.2, 0.2);
      assert.ok(x >= 0 && x <= 1);
      sum += x;
      if (x < 0.1 || x > 0.9) extremes++;
    }
    // Var of Beta(a,a) = 1/(4(2a+1)) = 0.178...; mean within 4 sigma.
    assert.ok(Math.abs(sum / n - 0.5) < 4 * Math.sqrt(1 / (4 * 1.4) / n));
    // P(x<0.1 or x>0.9) for Beta(0.2,0.2) is 0.673380 (numerical integral); a uniform would give 0.2.
    const p = 0.67338;
    assert.ok(Math.abs(extremes / n - p) < 4 * Math.sqrt((p * (1 - p)) / n), `extremes ${extremes / n}`);
  });

  it('permutation is a permutation and rejects bad arguments clearly', () => {
    const p = Array.from(Rng.fromSeed(3).permutation(1000));
    assert.deepEqual(
      [...p].sort((x, y) => x - y),
      Array.from({ length: 1000 }, (_, i) => i),
    );
    assert.throws(() => Rng.fromSeed(1).int(0), CoreValueError);
    assert.throws(() => Rng.fromState({ s: [0, 0, 0], origin: [1, 2, 3, 4] } as never), /four unsigned/);
  });
});
