/**
 * Gradients by segment during the backward pass, so a data-parallel rank can start reducing the
 * top of the network while the bottom is still being differentiated (overlap with backward).
 *
 * How, without recomputing anything: during a training forward every read of a parameter goes
 * through an identity whose custom gradient sees the gradient of that one use (`tap`). A
 * parameter's gradient is complete once all its uses reported (the trunk is used twice in a BBN
 * step, by the uniform and by the reversed pass); the contributions are summed in the order they
 * arrive, which is the order in which tfjs's backprop accumulates them (reverse tape order), and a
 * float32 sum of two float32 values computed in float64 and rounded is the float32 sum, so the
 * result is bit-identical to `tf.variableGrads`'. Parameters complete roughly from the end of the
 * flat order (classifier, branch blocks, then trunk layers from the top): each time the complete
 * suffix [lo, end) grows by `segmentElements` or more, `onSegment(lo, hi)` reports the new range,
 * already written into the flat gradient buffer.
 */
import * as tf from '@tensorflow/tfjs';
import type { LayoutEntry } from './api.ts';

/** Called with each newly complete range [lo, hi) of the flat gradient (hi of one = lo of the previous). */
export type SegmentSink = (lo: number, hi: number) => void;

/** One step's taps over a model's parameters; see the module comment. */
export class GradTaps {
  private readonly uses: Int32Array;
  private readonly arrived: Int32Array;
  /** Index of the last parameter not yet reported complete-and-flushed (flat order, from the end). */
  private next: number;
  /** Start of the complete suffix not yet reported. */
  private pendingHi: number;

  constructor(
    private readonly layout: readonly LayoutEntry[],
    private readonly out: Float32Array,
    private readonly segmentElements: number,
    private readonly onSegment: SegmentSink,
  ) {
    this.uses = new Int32Array(layout.length);
    this.arrived = new Int32Array(layout.length);
    this.next = layout.length - 1;
    this.pendingHi = out.length;
  }

  /** The forward's read of parameter `index`: an identity whose gradient is recorded. */
  tap(index: number, v: tf.Tensor): tf.Tensor {
    this.uses[index]++;
    const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
      value: tf.clone(args[0] as tf.Tensor),
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => {
        const g = Array.isArray(dy) ? dy[0] : dy;
        this.arrive(index, g.dataSync() as Float32Array);
        return tf.clone(g);
      },
    }));
    return f(v) as tf.Tensor;
  }

  /** After the backward: reports what is left (parameters never used count as zero gradient). */
  finish(): void {
    for (let i = this.next; i >= 0; i--) {
      if (this.uses[i] === 0) {
        const e = this.layout[i];
        this.out.fill(0, e.offset, e.offset + e.size);
      } else if (this.arrived[i] !== this.uses[i]) {
        throw new Error(
          `grad taps: ${this.layout[i].name} got ${this.arrived[i]} of ${this.uses[i]} gradients`,
        );
      }
    }
    this.next = -1;
    if (this.pendingHi > 0) this.onSegment(0, this.pendingHi);
    this.pendingHi = 0;
  }

  private arrive(index: number, g: Float32Array): void {
    const e = this.layout[index];
    const dst = this.out.subarray(e.offset, e.offset + e.size);
    if (this.arrived[index] === 0) dst.set(g);
    else for (let i = 0; i < dst.length; i++) dst[i] += g[i];
    this.arrived[index]++;
    if (this.arrived[index] !== this.uses[index]) return;
    while (this.next >= 0 && this.uses[this.next] > 0 && this.arrived[this.next] === this.uses[this.next]) {
      this.next--;
    }
    const lo = this.next >= 0 ? this.layout[this.next].offset + this.layout[this.next].size : 0;
    if (this.pendingHi - lo >= this.segmentElements && lo > 0) {
      this.onSegment(lo, this.pendingHi);
      this.pendingHi = lo;
    }
  }
}
