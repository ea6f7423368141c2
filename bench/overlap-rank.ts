/**
 * One rank's compute thread of bench/overlap.ts: a real BBN-ResNet-32 step on synthetic images,
 * its gradient handed to the main thread (which runs the ring) either whole after the step
 * ('plain') or by segment during the backward pass ('overlap', `StepOptionsBase.segments`).
 * Each handed range is a copy, transferred; the reduced values come back the same way. 'taps'
 * runs the segmented backward without reducing anything (the cost of segmenting alone).
 *
 * main → {type:'run', mode, steps}; thread → {type:'reduce', id, lo, data} ... {type:'done', stats}
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { Rng } from '../src/core/rng.ts';
import { selectBackend } from '../src/model/backend.ts';
import { bbnResNet32, randomBbnBatch } from './bbn-step-fixture.ts';

interface Init {
  readonly rank: number;
  readonly batch: number;
  readonly segmentElements: number;
}
const { rank, batch, segmentElements } = workerData as Init;
const port = parentPort!;
await selectBackend('tensorflow', { threads: 1 });
const model = bbnResNet32();
const b = randomBbnBatch(batch, Rng.fromSeed('bench-overlap').split(rank));
const grads = new Float32Array(model.numParams);

let nextId = 0;
const waiting = new Map<number, (data: Float32Array) => void>();
port.on(
  'message',
  (m: {
    type: string;
    id?: number;
    data?: Float32Array;
    mode?: 'plain' | 'plainLocal' | 'overlap' | 'taps';
    steps?: number;
  }) => {
    if (m.type === 'reduced') {
      waiting.get(m.id!)!(m.data!);
      waiting.delete(m.id!);
    } else if (m.type === 'run') void run(m.mode!, m.steps!);
    else if (m.type === 'exit') {
      model.dispose();
      process.exit(0);
    }
  },
);

/** Hands [lo, hi) of the gradient to the main thread; resolves once it came back reduced (written in place). */
function reduce(lo: number, hi: number): Promise<void> {
  const id = nextId++;
  const data = grads.slice(lo, hi);
  return new Promise((resolve) => {
    waiting.set(id, (back) => {
      grads.set(back, lo);
      resolve();
    });
    port.postMessage({ type: 'reduce', id, lo, data }, [data.buffer as ArrayBuffer]);
  });
}

async function run(mode: 'plain' | 'plainLocal' | 'overlap' | 'taps', steps: number): Promise<void> {
  const compute: number[] = [];
  const exposed: number[] = [];
  const segments: number[] = [];
  const checksums: string[] = [];
  for (let s = 0; s < steps; s++) {
    const pending: Promise<void>[] = [];
    const t0 = performance.now();
    model.step(b, 0.7, {
      out: grads,
      segments:
        mode === 'overlap'
          ? { elements: segmentElements, onSegment: (lo, hi) => pending.push(reduce(lo, hi)) }
          : mode === 'taps'
            ? { elements: segmentElements, onSegment: () => {} }
            : undefined,
    });
    const t1 = performance.now();
    if (mode === 'plain') pending.push(reduce(0, grads.length));
    // 'plainLocal' / 'taps': plain / segmented backward, nothing reduced (the cost of segmenting alone).
    await Promise.all(pending);
    const t2 = performance.now();
    compute.push(t1 - t0);
    exposed.push(t2 - t1);
    segments.push(pending.length);
    checksums.push(createHash('sha256').update(new Uint8Array(grads.buffer)).digest('hex'));
  }
  port.postMessage({ type: 'done', compute, exposed, segments, checksums });
}

port.postMessage({ type: 'ready', numParams: model.numParams });
