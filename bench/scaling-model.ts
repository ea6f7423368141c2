/**
 * Scaling on paper, calibrated (issue 16 item 6): a latency-bandwidth (alpha-beta) model of the
 * ring allreduce fitted to a `npm run bench:peers` output, combined with measured H100 step times,
 * printing the predicted data-parallel scaling efficiency at W = 8, 64, 256.
 *
 *   npm run bench:scaling -- [--from bench/peers/results/2026-12-06.md] [--overlap 0] [--alpha-us N]
 *
 * `--alpha-us N` adds a table with alpha = N us (an assumption, labelled as such: the loopback
 * alpha of a loaded 2-core machine is mostly waiting for a core).
 *
 * Model (Thakur/Rabenseifner ring, segments pipelined in chunks):
 *   T(W, S) = 2(W-1) * alpha + 2(W-1)/W * S * beta,   beta = max(beta_sw, 1 / link bandwidth)
 * alpha: the time of one ring step that does not scale with bytes; beta_sw: seconds of the rank's
 * own work per byte it sends (what a pipelined ring costs when the wire is not the limit).
 * Fitted per implementation to the bench's loopback points (W = 2, 4; 2 / 100 / 245 MB), see
 * `fit`: beta_cpu from CPU seconds per rank per allreduce divided by the bytes each rank sends at
 * 100 and 245 MB (robust on a loaded machine: it does not count waiting for a core); alpha from
 * the 2 MB wall times (fastest round) once beta_cpu is taken off; beta_wall from the large wall
 * times once alpha is taken off.
 * The prediction uses alpha and beta_sw = beta_cpu (one rank per dedicated core set, as on a GPU
 * node); beta_wall is printed beside it. Efficiency = t_step / (t_step + (1 - overlap) * T), with
 * overlap the fraction of T hidden behind the backward pass (default 0; `distributed.
 * overlapSegmentBytes`, measured by bench/overlap.ts). It can never exceed t_backward / T: pass
 * at most that for a network whose allreduce is longer than its backward pass. bf16 halves the gradient bytes on the wire; its software cost
 * per gradient element is taken from the bench's bf16 rows if present, else assumed equal to the
 * float32 one (stated in the output).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    from: { type: 'string', default: 'bench/peers/results/2026-12-06.md' },
    overlap: { type: 'string', default: '0' },
    'alpha-us': { type: 'string' },
  },
});
const overlap = Number(values.overlap);

/** One measured point: implementation, W, bytes, fastest wall s, CPU s per rank (median round). */
interface Point {
  kind: string;
  W: number;
  bytes: number;
  wall: number;
  cpu: number;
}

/** Reads the markdown tables of a bench:peers run. */
function parse(text: string): Point[] {
  const points: Point[] = [];
  let W = 0;
  let bytes = 0;
  let bf16 = false;
  for (const line of text.split('\n')) {
    const head = /^### W=(\d+), ([\d.]+) MB(.*)$/.exec(line);
    if (head) {
      W = Number(head[1]);
      bytes = Number(head[2]) * 1e6;
      bf16 = /bf16/.test(head[3]);
      continue;
    }
    const row = /^\| ([^|]+) \| ([\d.]+)(?:-([\d.]+))? \|[^|]*\|[^|]*\| ([\d.]+)(?:-([\d.]+))? \|$/.exec(
      line,
    );
    if (!row || W === 0) continue;
    const label = row[1].trim();
    const kind = /dataPlane 'native'/.test(label)
      ? 'ring-native'
      : /transport tcp/.test(label)
        ? 'ring-tcp'
        : /transport grpc/.test(label)
          ? 'ring-grpc'
          : /gloo/.test(label)
            ? 'gloo'
            : null;
    if (!kind) continue;
    const cpuLo = Number(row[4]);
    const cpuHi = Number(row[5] ?? row[4]);
    points.push({
      kind: bf16 ? `${kind}+bf16` : kind,
      W,
      bytes,
      wall: Number(row[2]) / 1000,
      cpu: (cpuLo + cpuHi) / 2 / 1000,
    });
  }
  return points;
}

/** Bytes each rank sends in one ring allreduce of `bytes`. */
const sent = (W: number, bytes: number): number => (2 * (W - 1) * bytes) / W;

interface Fit {
  alpha: number;
  betaWall: number;
  betaCpu: number;
}

/**
 * beta_cpu: median CPU seconds per sent byte over the large points (>= 50 MB); alpha: median over
 * the small points of the wall time left after beta_cpu, per ring step; beta_wall: median over
 * the large points of the wall time left after alpha, per sent byte. Medians, because a single
 * round slowed by other load must not decide a constant.
 */
function fit(points: Point[]): Fit {
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const large = points.filter((p) => p.bytes >= 50e6);
  const small = points.filter((p) => p.bytes < 50e6);
  const betaCpu = median(large.map((p) => p.cpu / sent(p.W, p.bytes)));
  const alpha = median(
    small.map((p) => Math.max(0, (p.wall - sent(p.W, p.bytes) * betaCpu) / (2 * (p.W - 1)))),
  );
  const betaWall = median(large.map((p) => (p.wall - 2 * (p.W - 1) * alpha) / sent(p.W, p.bytes)));
  return { alpha, betaWall, betaCpu };
}

/** H100 step times from the issue, and the gradient bytes of each network (float32). */
const NETWORKS = [
  // 550,388 parameters (BBN-ResNet-32, CIFAR-100 head; createModel().numParams).
  { name: 'BBN-ResNet-32, 128+128 per GPU', step: 0.03, bytes: 550_388 * 4 },
  // The issue's figure for BBN-ResNet-50 (iNaturalist 2018 head).
  { name: 'BBN-ResNet-50, 64+64 at 224 px', step: 0.06, bytes: 245e6 },
];
const LINKS_GBIT = [10, 25, 100];
const WORLDS = [8, 64, 256];

/**
 * Allreduce seconds of `bytes` of float32 gradients; `wire` is the fraction of those bytes on the
 * wire (1 for float32, 0.5 for bf16). beta_cpu is per float32 byte of the array.
 */
function ringTime(f: Fit, W: number, bytes: number, gbit: number, wire = 1): number {
  const beta = Math.max(f.betaCpu, (wire * 8) / (gbit * 1e9));
  return 2 * (W - 1) * f.alpha + sent(W, bytes) * beta;
}

const points = parse(readFileSync(values.from, 'utf8'));
const kinds = [...new Set(points.map((p) => p.kind))];
console.log(`# Ring allreduce scaling model, fitted to ${values.from}\n`);
console.log(
  '| implementation | points | alpha (us per ring step) | beta_wall (ns/B) | beta_cpu (ns/B) | = GB/s per rank |',
);
console.log('|---|---|---|---|---|---|');
const fits = new Map<string, Fit>();
for (const k of kinds) {
  const ps = points.filter((p) => p.kind === k);
  const f = fit(ps);
  fits.set(k, f);
  console.log(
    `| ${k} | ${ps.length} | ${(f.alpha * 1e6).toFixed(0)} | ${(f.betaWall * 1e9).toFixed(2)} | ${(f.betaCpu * 1e9).toFixed(2)} | ${(1 / f.betaCpu / 1e9).toFixed(2)} |`,
  );
}
// Ours: the shipped data plane where the input measured it (native), else the JavaScript one.
const ours = fits.has('ring-native') ? 'ring-native' : 'ring-tcp';
const tcp = fits.get(ours);
if (!tcp) throw new Error(`${values.from}: no rows of "our ring, transport tcp"`);
const bf16 = fits.get(`${ours}+bf16`);
// bf16: half the wire bytes; software seconds per gradient element from its own rows if measured.
const bf16Fit: Fit = bf16 ? { ...tcp, betaCpu: bf16.betaCpu } : tcp;
const bf16Note = bf16
  ? `bf16: software cost per element from the ${ours}+bf16 rows, wire bytes halved`
  : 'bf16: software cost per element assumed equal to float32 (no bf16 rows in the input), wire bytes halved';

console.log(`\nOurs below: ${ours}.`);
const eff = (step: number, T: number): number => step / (step + (1 - overlap) * T);
const pct = (x: number): string => `${(100 * x).toFixed(x < 0.1 ? 1 : 0)}%`;
const gloo = fits.get('gloo');
console.log(
  `\nPredicted scaling efficiency t_step / (t_step + ${+(1 - overlap).toFixed(3)} * T_allreduce), overlap ${overlap}; ${bf16Note}.`,
);
console.log('Reference: Horovod, 90% (ResNet-101, 512 GPUs, published).');
// alpha as fitted here is mostly waiting for a core on this loaded 2-core machine; the second
// table takes gloo's alpha from the same run instead (what the ring step costs unstarved).
const alphas: Array<[string, number]> = [[`${ours} (fitted)`, tcp.alpha]];
if (gloo) alphas.push(['gloo (fitted, same run)', gloo.alpha]);
if (values['alpha-us'] !== undefined) {
  alphas.push(['--alpha-us (assumed, not measured)', Number(values['alpha-us']) / 1e6]);
}
for (const [source, alpha] of alphas) {
  console.log(`\nalpha = ${(alpha * 1e6).toFixed(0)} us per ring step, from ${source}:\n`);
  console.log(
    `| network | link | ${WORLDS.map((W) => `W=${W} fp32`).join(' | ')} | ${WORLDS.map((W) => `W=${W} bf16`).join(' | ')} | gloo W=8 fp32 |`,
  );
  console.log(`|---|---|${WORLDS.map(() => '---').join('|')}|${WORLDS.map(() => '---').join('|')}|---|`);
  for (const net of NETWORKS) {
    for (const gbit of LINKS_GBIT) {
      const f32Cells = WORLDS.map((W) => eff(net.step, ringTime({ ...tcp, alpha }, W, net.bytes, gbit)));
      const bfCells = WORLDS.map((W) =>
        eff(net.step, ringTime({ ...bf16Fit, alpha }, W, net.bytes, gbit, 0.5)),
      );
      const g = gloo ? pct(eff(net.step, ringTime(gloo, 8, net.bytes, gbit))) : '-';
      console.log(
        `| ${net.name} | ${gbit} Gbit/s | ${f32Cells.map(pct).join(' | ')} | ${bfCells.map(pct).join(' | ')} | ${g} |`,
      );
    }
  }
}
const best = tcp.betaCpu;
console.log(
  `\nWhere the wire stops being the limit: beta_cpu ${(best * 1e9).toFixed(2)} ns/B = ${(8 / best / 1e9).toFixed(1)} Gbit/s per rank; ` +
    'above that link speed the software is the bottleneck and a faster network does not help.',
);
