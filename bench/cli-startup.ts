/**
 * What a `bbn` command costs before it does anything: wall and CPU time of `bbn --help`,
 * `bbn train --help` and `bbn status DIR` (a finished tiny run) as a user's shell runs them, the
 * compiled CLI (dist/, what set-up builds) against its peer in the same run, the same sources
 * through tsx (BBN_FROM_SOURCE=1, what every call cost before). Medians of alternating repeats.
 *
 * usage: node --import tsx bench/cli-startup.ts [--repeats 5]   (npm run bench:cli)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectBackend } from '../src/model/backend.ts';
import { runTraining } from '../src/worker/run.ts';
import { ROOT, timeBbn } from '../test/helpers/cli-timing.ts';
import { tinyConfig } from '../test/helpers/tiny.ts';

const i = process.argv.indexOf('--repeats');
const repeats = i >= 0 ? Number(process.argv[i + 1]) : 5;

execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-dist.mjs')], { cwd: ROOT, stdio: 'inherit' });
const dir = mkdtempSync(join(tmpdir(), 'bbn-bench-cli-'));
const run = join(dir, 'tiny');
await runTraining(tinyConfig({ train: { epochs: 1 } }), run, { backend: (await selectBackend('auto')).name });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const cases: [string, string[]][] = [
  ['bbn --help', ['--help']],
  ['bbn train --help', ['train', '--help']],
  ['bbn status DIR', ['status', run, '--temporal', '127.0.0.1:1']],
];
console.log(`${repeats} alternating repeats each; medians; compiled = dist/, source = tsx`);
console.log('command            compiled wall  CPU    source wall  CPU    wall ratio  CPU ratio');
for (const [name, args] of cases) {
  const t = {
    compiled: { wall: [] as number[], cpu: [] as number[] },
    source: { wall: [] as number[], cpu: [] as number[] },
  };
  for (let r = 0; r < repeats; r++) {
    for (const side of ['compiled', 'source'] as const) {
      const x = await timeBbn(args, side === 'source' ? { BBN_FROM_SOURCE: '1' } : {});
      if (x.code !== 0) throw new Error(`${name} (${side}) exited ${x.code}: ${x.stderr}`);
      t[side].wall.push(x.wallSeconds);
      t[side].cpu.push(x.cpuSeconds);
    }
  }
  const [cw, cc, sw, sc] = [t.compiled.wall, t.compiled.cpu, t.source.wall, t.source.cpu].map(median);
  console.log(
    `${name.padEnd(18)} ${cw.toFixed(2).padStart(8)} s ${cc.toFixed(2).padStart(5)} s ${sw.toFixed(2).padStart(8)} s ${sc
      .toFixed(2)
      .padStart(5)} s ${(sw / cw).toFixed(1).padStart(9)}x ${(sc / cc).toFixed(1).padStart(9)}x`,
  );
}
rmSync(dir, { recursive: true, force: true });
