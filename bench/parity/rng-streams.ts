/**
 * Are a run's random streams independent? Statistical checks of the streams `Rng` derives from a
 * run seed (issue #19's hypothesis: initial weights and data draws correlated by their derivation),
 * each run for the legacy derivation (derive.ts, shipped until issue #19) and for the shipped one,
 * SHA-256 of (parent, key), the null reference that cannot relate its children. (Result files made
 * before the switch call the legacy derivation "shipped".)
 *
 * 1. collisions: distinct (seed, path) pairs giving the same 128-bit state, or the same state word
 *    at the same position (expected by chance: pairs / 2^32);
 * 2. cross-correlation over seeds: for pairs of streams a run actually uses (initial weights of
 *    the first conv and of the classifier, the uniform and reversed plan of epoch 1, the crop of
 *    row 0, the parent), the Pearson correlation of output j of one with output k of the other,
 *    over S seeds, as z = r·√S for all j, k < K; under independence z ~ N(0, 1), so Σz² ~ χ²(K²);
 * 3. bit agreement: bit b of word 0 of one stream against bit b' of word 0 of the other, 1024
 *    z-scores per pair;
 * 4. avalanche: one flipped bit of the seed or of a numeric key changes on average 64 of the
 *    child's 128 state bits (mean and sd of the Hamming distance; ideal 64 and 5.66).
 *
 * 5. functionals: over seeds, the correlation of what the trainer actually builds from the streams
 *    (mean and spread of the initial classifier weights and bias, mean of the first conv's weights)
 *    with the epoch-1 batches (share of tail-class rows in the first 5 uniform and reversed
 *    batches, mean label of the first uniform batch, share of class 0 in the first reversed batch).
 *
 *   node --import tsx bench/parity/rng-streams.ts [--seeds 20000] [--offset 0] [--json FILE]
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { planEpoch } from '../../src/core/epoch-plan.ts';
import { Rng } from '../../src/core/rng.ts';
import { loadData } from '../../src/data/load.ts';
import { initialValues } from '../../src/model/params.ts';
import { benchConfig } from './config.ts';
import { legacyChild, legacyRoot } from './derive.ts';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '20000' },
    offset: { type: 'string', default: '0' },
    json: { type: 'string' },
  },
});
const S = Number(values.seeds);
/** First seed: a second, disjoint range replicates whatever one range flags. */
const O = Number(values.offset);
const K = 16;

type Derivation = { name: string; root: (seed: number) => Rng; split: (r: Rng, key: string | number) => Rng };
const mk = (w: number[]) => Rng.fromState({ s: w as never, origin: w as never });
const DERIVATIONS: Derivation[] = [
  {
    name: 'legacy',
    root: (s) => mk(legacyRoot(s)),
    split: (r, k) => mk(legacyChild(r.state().origin, k)),
  },
  { name: 'sha256', root: (s) => Rng.fromSeed(s), split: (r, k) => r.split(k) },
];

/** The streams of one run that the trainer draws from, by path from the run's root. */
const PATHS: Record<string, (string | number)[]> = {
  root: [],
  'init.conv1': ['init', 'backbone.conv1.weight'],
  'init.cb_conv1': ['init', 'backbone.cb_block.conv1.weight'],
  'init.classifier': ['init', 'classifier.weight'],
  'plan1.uniform': ['plan', 1, 'uniform'],
  'plan1.reversed': ['plan', 1, 'reversed'],
  'plan2.uniform': ['plan', 2, 'uniform'],
  'augment1.0.0.0': ['augment', 1, 0, 0, 0],
  'augment1.0.1.0': ['augment', 1, 0, 1, 0],
};
const PAIRS: [string, string][] = [
  ['init.conv1', 'plan1.uniform'],
  ['init.conv1', 'plan1.reversed'],
  ['init.classifier', 'plan1.uniform'],
  ['init.classifier', 'plan1.reversed'],
  ['init.cb_conv1', 'plan1.reversed'],
  ['init.conv1', 'augment1.0.0.0'],
  ['plan1.uniform', 'plan1.reversed'],
  ['plan1.uniform', 'plan2.uniform'],
  ['augment1.0.0.0', 'augment1.0.1.0'],
  ['root', 'init.conv1'],
  ['root', 'plan1.uniform'],
];

function derive(d: Derivation, seed: number, path: (string | number)[]): Rng {
  let r = d.root(seed);
  for (const k of path) r = d.split(r, k);
  return r;
}

/** Φ(z), the standard normal distribution function (Abramowitz-Stegun 7.1.26 through erf). */
function phi(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const y =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t *
      Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + y) : 0.5 * (1 - y);
}

/** Upper tail P(χ²(k) ≥ x), Wilson-Hilferty. */
function chi2p(x: number, k: number): number {
  const z = ((x / k) ** (1 / 3) - (1 - 2 / (9 * k))) / Math.sqrt(2 / (9 * k));
  return 1 - phi(z);
}

/** P(max of m independent |N(0,1)| ≥ z), Bonferroni-free (exact for independence). */
function maxp(z: number, m: number): number {
  return 1 - (1 - 2 * (1 - phi(z))) ** m;
}

function popcount(x: number): number {
  let c = 0;
  for (let v = x >>> 0; v; v &= v - 1) c++;
  return c;
}

function check(d: Derivation) {
  const names = Object.keys(PATHS);
  // outputs[name][seed*K + j] as uniforms in [0, 1); states for collision checks.
  const outputs: Record<string, Float64Array> = {};
  const word0: Record<string, Uint32Array> = {};
  const states = new Map<string, string>();
  let stateCollisions = 0;
  const wordSeen = new Map<number, number>();
  let wordCollisions = 0;
  for (const n of names) {
    outputs[n] = new Float64Array(S * K);
    word0[n] = new Uint32Array(S);
  }
  for (let i = 0; i < S; i++) {
    const seed = O + i;
    for (const [n, path] of Object.entries(PATHS)) {
      const r = derive(d, seed, path);
      const st = r.state().s;
      const key = st.join(',');
      const prev = states.get(key);
      if (prev !== undefined) stateCollisions++;
      else states.set(key, `${seed}:${n}`);
      const w = st[0] >>> 0;
      if (wordSeen.has(w)) wordCollisions++;
      else wordSeen.set(w, seed);
      for (let j = 0; j < K; j++) {
        const u = r.nextUint32();
        if (j === 0) word0[n][i] = u;
        outputs[n][i * K + j] = u / 4294967296;
      }
    }
  }
  const words = S * names.length;
  const expectedWordCollisions = (words * (words - 1)) / 2 / 4294967296;
  const pairs = PAIRS.map(([a, b]) => {
    const A = outputs[a];
    const B = outputs[b];
    let chi = 0;
    let maxZ = 0;
    for (let j = 0; j < K; j++) {
      for (let k = 0; k < K; k++) {
        let sa = 0;
        let sb = 0;
        let sab = 0;
        let saa = 0;
        let sbb = 0;
        for (let s = 0; s < S; s++) {
          const x = A[s * K + j];
          const y = B[s * K + k];
          sa += x;
          sb += y;
          sab += x * y;
          saa += x * x;
          sbb += y * y;
        }
        const cov = sab / S - (sa / S) * (sb / S);
        const r = cov / Math.sqrt((saa / S - (sa / S) ** 2) * (sbb / S - (sb / S) ** 2));
        const z = r * Math.sqrt(S);
        chi += z * z;
        maxZ = Math.max(maxZ, Math.abs(z));
      }
    }
    let bitChi = 0;
    let bitMax = 0;
    for (let i = 0; i < 32; i++) {
      for (let k = 0; k < 32; k++) {
        let agree = 0;
        for (let s = 0; s < S; s++) agree += ((word0[a][s] >>> i) & 1) === ((word0[b][s] >>> k) & 1) ? 1 : 0;
        const z = (agree - S / 2) / Math.sqrt(S / 4);
        bitChi += z * z;
        bitMax = Math.max(bitMax, Math.abs(z));
      }
    }
    return {
      pair: `${a} × ${b}`,
      corrChi2: chi,
      corrDof: K * K,
      corrP: chi2p(chi, K * K),
      corrMaxAbsZ: maxZ,
      corrMaxP: maxp(maxZ, K * K),
      bitChi2: bitChi,
      bitDof: 1024,
      bitP: chi2p(bitChi, 1024),
      bitMaxAbsZ: bitMax,
      bitMaxP: maxp(bitMax, 1024),
    };
  });
  // Avalanche: flip bit i of the seed (seed < 2^16, bits 0..15) and of a numeric key (epoch).
  const hd = (x: Rng, y: Rng) => {
    const a = x.state().s;
    const b = y.state().s;
    return a.reduce((t, w, i) => t + popcount(w ^ b[i]), 0);
  };
  const seedFlips: number[] = [];
  const keyFlips: number[] = [];
  for (let seed = O; seed < O + Math.min(S, 4000); seed++) {
    for (let bit = 0; bit < 16; bit++) {
      const other = seed ^ (1 << bit);
      seedFlips.push(hd(derive(d, seed, ['plan', 1, 'uniform']), derive(d, other, ['plan', 1, 'uniform'])));
      const base = derive(d, seed, ['plan']);
      const e = 1 + (seed % 1000);
      keyFlips.push(hd(d.split(base, e), d.split(base, e ^ (1 << (bit % 10)))));
    }
  }
  const stats = (xs: number[]) => {
    const m = xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
    return { mean: m, sd, min: Math.min(...xs) };
  };
  return {
    derivation: d.name,
    seeds: S,
    streamsPerSeed: names.length,
    stateCollisions,
    word0Collisions: wordCollisions,
    expectedWord0Collisions: expectedWordCollisions,
    pairs,
    avalancheSeedBit: stats(seedFlips),
    avalancheKeyBit: stats(keyFlips),
    functionals: functionals(d),
  };
}

const data = await loadData(benchConfig('bbn', 0).dataset);
const labels = data.train.labels;
const tail = (y: number) => data.trainCounts[y] < 20;

/** Correlations over seeds between init statistics and epoch-1 batch statistics (see the header). */
function functionals(d: Derivation) {
  const n = Math.min(S, 5000);
  const spec = (name: string, shape: number[], bound: number) => ({
    name,
    shape,
    init: { kind: 'uniform' as const, low: -bound, high: bound },
  });
  const w = {
    'cls.w.mean': [] as number[],
    'cls.w.sd': [] as number[],
    'cls.b.mean': [] as number[],
    'conv1.mean': [] as number[],
  };
  const b = {
    'u.tail5': [] as number[],
    'r.tail5': [] as number[],
    'u.label1': [] as number[],
    'r.class0': [] as number[],
  };
  const saved = { fromSeed: Rng.fromSeed, split: Rng.prototype.split };
  if (d.name !== 'sha256') {
    (Rng as unknown as { fromSeed: (s: number) => Rng }).fromSeed = (s) => d.root(s);
    Rng.prototype.split = function (this: Rng, k: string | number) {
      return d.split(this, k);
    };
  }
  try {
    for (let seed = O; seed < O + n; seed++) {
      const init = Rng.fromSeed(seed).split('init');
      const cw = initialValues(spec('classifier.weight', [64, 10], 1 / 8), init);
      const cb = initialValues(spec('classifier.bias', [10], 1 / 8), init);
      const c1 = initialValues(
        {
          name: 'backbone.conv1.weight',
          shape: [3, 3, 1, 8],
          init: { kind: 'normal', std: Math.sqrt(2 / 9) },
        },
        init,
      );
      const m = (a: Float32Array) => a.reduce((x, y) => x + y, 0) / a.length;
      w['cls.w.mean'].push(m(cw));
      w['cls.w.sd'].push(Math.sqrt(m(cw.map((x) => x * x)) - m(cw) ** 2));
      w['cls.b.mean'].push(m(cb));
      w['conv1.mean'].push(m(c1));
      const plan = planEpoch({
        seed,
        epoch: 1,
        labels,
        numClasses: 10,
        globalBatch: 64,
        rebalance: 'reversed',
      });
      const share = (rows: Int32Array, from: number, to: number, f: (y: number) => boolean) => {
        let c = 0;
        for (let i = from; i < to; i++) c += f(labels[rows[i]]) ? 1 : 0;
        return c / (to - from);
      };
      b['u.tail5'].push(share(plan.uniform, 0, 320, tail));
      b['r.tail5'].push(share(plan.reversed, 0, 320, tail));
      let sum = 0;
      for (let i = 0; i < 64; i++) sum += labels[plan.uniform[i]];
      b['u.label1'].push(sum / 64);
      b['r.class0'].push(share(plan.reversed, 0, 64, (y) => y === 0));
    }
  } finally {
    (Rng as unknown as { fromSeed: typeof saved.fromSeed }).fromSeed = saved.fromSeed;
    Rng.prototype.split = saved.split;
  }
  const corr = (x: number[], y: number[]) => {
    const mx = x.reduce((a, v) => a + v, 0) / x.length;
    const my = y.reduce((a, v) => a + v, 0) / y.length;
    let sxy = 0;
    let sxx = 0;
    let syy = 0;
    for (let i = 0; i < x.length; i++) {
      sxy += (x[i] - mx) * (y[i] - my);
      sxx += (x[i] - mx) ** 2;
      syy += (y[i] - my) ** 2;
    }
    return sxy / Math.sqrt(sxx * syy);
  };
  const rows = Object.entries(w).flatMap(([wn, wx]) =>
    Object.entries(b).map(([bn, bx]) => {
      const r = corr(wx, bx);
      return { pair: `${wn} × ${bn}`, r, z: r * Math.sqrt(n) };
    }),
  );
  const chi = rows.reduce((a, r) => a + r.z * r.z, 0);
  return { seeds: n, rows, chi2: chi, dof: rows.length, p: chi2p(chi, rows.length) };
}

const results = DERIVATIONS.map(check);
for (const r of results) {
  process.stdout.write(
    `\n${r.derivation}: ${r.seeds} seeds from ${O} × ${r.streamsPerSeed} streams; 128-bit state collisions ${r.stateCollisions}; ` +
      `word-0 collisions ${r.word0Collisions} (chance ${r.expectedWord0Collisions.toFixed(1)})\n` +
      `  avalanche (Hamming distance of 128 state bits, ideal 64 ± 5.66): seed bit ${r.avalancheSeedBit.mean.toFixed(2)} ± ${r.avalancheSeedBit.sd.toFixed(2)} (min ${r.avalancheSeedBit.min}), ` +
      `key bit ${r.avalancheKeyBit.mean.toFixed(2)} ± ${r.avalancheKeyBit.sd.toFixed(2)} (min ${r.avalancheKeyBit.min})\n` +
      '  | pair | Σz² corr (dof 256), p | max |z|, p | Σz² bits (dof 1024), p | max |z|, p |\n  |---|---|---|---|---|\n',
  );
  const f = (x: number, p: number, d = 0) => `${x.toFixed(d)} (p ${p.toFixed(2)})`;
  for (const p of r.pairs) {
    process.stdout.write(
      `  | ${p.pair} | ${f(p.corrChi2, p.corrP)} | ${f(p.corrMaxAbsZ, p.corrMaxP, 2)} | ${f(p.bitChi2, p.bitP)} | ${f(p.bitMaxAbsZ, p.bitMaxP, 2)} |\n`,
    );
  }
  const fn = r.functionals;
  const worst = fn.rows.reduce((a, x) => (Math.abs(x.z) > Math.abs(a.z) ? x : a));
  process.stdout.write(
    `  functionals over ${fn.seeds} seeds: Σz² ${fn.chi2.toFixed(1)} (dof ${fn.dof}, p ${fn.p.toFixed(2)}); ` +
      `largest |z| ${Math.abs(worst.z).toFixed(2)} (${worst.pair}, r = ${worst.r.toFixed(4)})\n`,
  );
}
if (values.json) writeFileSync(values.json, `${JSON.stringify(results, null, 1)}\n`);
