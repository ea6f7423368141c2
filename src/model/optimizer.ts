/**
 * SGD with momentum on flat Float32Arrays, exactly PyTorch's `torch.optim.SGD` (dampening 0),
 * which BBN uses with Nesterov, momentum 0.9 and weight decay on ALL parameters (BBN-SPEC §2.3):
 *
 *   g ← g + wd·p
 *   buf ← g (first step)  |  buf ← μ·buf + g (later steps)
 *   p ← p − lr·(g + μ·buf)   (Nesterov)   or   p ← p − lr·buf   (classic momentum)
 *
 * Pure TypeScript, no tfjs: every rank applies it to the allreduced gradient and gets the same
 * bits. Arithmetic is float64 per element, rounded to float32 on store.
 */

/** A contiguous slice of a flat parameter buffer. */
export interface FlatRange {
  readonly offset: number;
  readonly length: number;
}

/** SGD hyper-parameters (the lr is given per step, from the schedule). */
export interface SgdOptions {
  /** Default 0.9. */
  readonly momentum?: number;
  /** Default true. Needs momentum > 0 (as in PyTorch). */
  readonly nesterov?: boolean;
  /** L2 weight decay added to every gradient in range. Default 0. */
  readonly weightDecay?: number;
  /** Update only this slice (e.g. `model.classifierRange()` for decoupling); default all. */
  readonly range?: FlatRange;
}

/** Serialisable optimizer state (for checkpoints). */
export interface SgdState {
  /** Size of the full flat parameter buffer this optimizer was made for. */
  readonly size: number;
  readonly range: FlatRange;
  /** Momentum buffer over `range` (length `range.length`). */
  readonly momentum: Float32Array;
  /** Whether the momentum buffer exists (PyTorch creates it at the first step). */
  readonly started: boolean;
}

/** A bad optimizer argument or state; names the field and the value. */
export class OptimizerError extends Error {
  override name = 'OptimizerError';
}

/** Flat-buffer SGD; see the module doc for the update. */
export class Sgd {
  readonly momentum: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;
  readonly range: FlatRange;
  /** Momentum buffer over `range`; meaningful only once `started`. */
  private buf: Float32Array;
  private started = false;

  constructor(
    readonly size: number,
    options: SgdOptions = {},
  ) {
    this.momentum = options.momentum ?? 0.9;
    this.nesterov = options.nesterov ?? true;
    this.weightDecay = options.weightDecay ?? 0;
    if (!Number.isInteger(size) || size < 0)
      throw new OptimizerError(`Sgd size (${size}) must be an integer >= 0`);
    if (!(this.momentum >= 0 && this.momentum < 1)) {
      throw new OptimizerError(`Sgd momentum (${this.momentum}) must be in [0, 1)`);
    }
    if (this.nesterov && this.momentum === 0) throw new OptimizerError('Sgd nesterov needs momentum > 0');
    if (!(this.weightDecay >= 0) || !Number.isFinite(this.weightDecay)) {
      throw new OptimizerError(`Sgd weightDecay (${this.weightDecay}) must be finite and >= 0`);
    }
    this.range = options.range ?? { offset: 0, length: size };
    const { offset, length } = this.range;
    if (
      !Number.isInteger(offset) ||
      !Number.isInteger(length) ||
      offset < 0 ||
      length < 0 ||
      offset + length > size
    ) {
      throw new OptimizerError(`Sgd range ${JSON.stringify(this.range)} must lie within [0, ${size})`);
    }
    this.buf = new Float32Array(length);
  }

  /** Updates `params` in place from `grads` (both full flat buffers) at learning rate `lr`. */
  step(params: Float32Array, grads: Float32Array, lr: number): void {
    if (params.length !== this.size || grads.length !== this.size) {
      throw new OptimizerError(
        `Sgd.step: params (${params.length}) and grads (${grads.length}) must have length ${this.size}`,
      );
    }
    if (!Number.isFinite(lr) || lr < 0)
      throw new OptimizerError(`Sgd.step: lr (${lr}) must be finite and >= 0`);
    const { offset, length } = this.range;
    const mu = this.momentum;
    const wd = this.weightDecay;
    const buf = this.buf;
    const first = !this.started;
    for (let j = 0; j < length; j++) {
      const i = offset + j;
      const p = params[i];
      let d = grads[i] + wd * p;
      if (mu !== 0) {
        const b = first ? d : mu * buf[j] + d;
        buf[j] = b;
        // Use the stored (float32) buffer, as PyTorch does.
        d = this.nesterov ? d + mu * buf[j] : buf[j];
      }
      params[i] = p - lr * d;
    }
    this.started = true;
  }

  /** A copy of the state. */
  getState(): SgdState {
    return { size: this.size, range: { ...this.range }, momentum: this.buf.slice(), started: this.started };
  }

  /** Restores a state saved by `getState` for the same size and range. */
  setState(state: SgdState): void {
    if (
      state?.size !== this.size ||
      state.range?.offset !== this.range.offset ||
      state.range?.length !== this.range.length
    ) {
      throw new OptimizerError(
        `Sgd state for size ${state?.size} range ${JSON.stringify(state?.range)} does not fit size ${this.size} range ${JSON.stringify(this.range)}`,
      );
    }
    if (!(state.momentum instanceof Float32Array) || state.momentum.length !== this.range.length) {
      throw new OptimizerError(`Sgd state momentum must be a Float32Array of length ${this.range.length}`);
    }
    this.buf = state.momentum.slice();
    this.started = !!state.started;
  }
}
