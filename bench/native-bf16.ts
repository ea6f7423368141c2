/**
 * bf16 on the wire (compress 'bf16') on the native data plane against the JavaScript plane: W ranks
 * of a tcp ring in this one process, the whole array as gradient (bf16Elements = length), the
 * planes taking turns round by round; float32 on the native plane as the third peer, for what the
 * bf16 conversion costs in C.
 *
 *   node --import tsx bench/native-bf16.ts [--worlds 2,4] [--size-mb 100] [--rounds 5] [--chunk-kib 4096]
 *
 * Prints, per W and peer: the median wall seconds of one allreduce (all ranks), the median CPU
 * seconds of the process in it (user + system, every rank and the planes' threads together), and
 * each against the JavaScript plane's bf16. In one process the ranks share the cores, so wall time
 * is the machine's, not a ring's across machines; CPU time is the better measure of the plane.
 * MB = 10^6 bytes of float32 (the array; bf16 halves what travels).
 */
import { parseArgs } from 'node:util';
import type { DataPlaneChoice } from '../src/collective/api.ts';
import type { WireCompression } from '../src/collective/index.ts';
import { startLocalRing } from '../test/collective/ring-harness.ts';

const { values } = parseArgs({
  options: {
    worlds: { type: 'string', default: '2,4' },
    'size-mb': { type: 'string', default: '100' },
    rounds: { type: 'string', default: '5' },
    'chunk-kib': { type: 'string', default: '4096' },
  },
});
const worlds = values.worlds.split(',').map(Number);
const n = Math.floor((Number(values['size-mb']) * 1e6) / 4);
const rounds = Number(values.rounds);
const chunkBytes = Number(values['chunk-kib']) * 1024;

interface Peer {
  readonly name: string;
  readonly dataPlane: DataPlaneChoice;
  readonly compress: WireCompression;
}
const PEERS: readonly Peer[] = [
  { name: 'bf16 js', dataPlane: 'js', compress: 'bf16' },
  { name: 'bf16 native', dataPlane: 'native', compress: 'bf16' },
  { name: 'f32 native', dataPlane: 'native', compress: 'none' },
];

/** W ring members in this process, each with its own server on 127.0.0.1:0. */
const ringOf = (W: number, peer: Peer) =>
  startLocalRing(W, {
    runId: 'bench-native-bf16',
    chunkBytes,
    compress: peer.compress,
    dataPlane: peer.dataPlane,
  });

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

console.log(
  `ring allreduce of ${values['size-mb']} MB (${n} float32), chunks of ${chunkBytes / 1024} KiB, tcp, W ranks in one process, ${rounds} rounds (peers take turns), medians`,
);
for (const W of worlds) {
  const data = Array.from({ length: W }, (_, r) => new Float32Array(n).fill(0.001 * (r + 1)));
  const rings = await Promise.all(PEERS.map((p) => ringOf(W, p)));
  const wall = PEERS.map((): number[] => []);
  const cpu = PEERS.map((): number[] => []);
  let sequence = 0;
  // One warm-up round, then the measured ones.
  for (let round = -1; round < rounds; round++) {
    for (const [i, ring] of rings.entries()) {
      const tag = { epoch: 0, step: sequence++, bf16Elements: n };
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await Promise.all(ring.rings.map((r, rank) => r.allreduce(data[rank], tag)));
      const seconds = (performance.now() - t0) / 1000;
      const c = process.cpuUsage(c0);
      if (round < 0) continue;
      wall[i].push(seconds);
      cpu[i].push((c.user + c.system) / 1e6);
    }
  }
  for (const [i, p] of PEERS.entries()) {
    const planes = rings[i].rings.map((r) => r.dataPlane).join(',');
    const w = median(wall[i]);
    const c = median(cpu[i]);
    console.log(
      `W=${W} ${p.name.padEnd(12)} wall ${w.toFixed(3)} s (x${(w / median(wall[0])).toFixed(2)} of bf16 js)  cpu ${c.toFixed(3)} s (x${(c / median(cpu[0])).toFixed(2)})  planes ${planes}`,
    );
  }
  await Promise.all(rings.map((r) => r.close()));
}
