/**
 * Fault injection for tests of the ring's failure handling: a hook that sees every data frame
 * just before it is written and may replace it or stop sending altogether. Reached only through
 * `internal.ts` (a symbol-keyed option), never through the public API.
 */

/** Where a frame sits in the run of one ring. */
export interface FrameSite {
  /** Allreduce sequence number within the ring. */
  readonly sequence: number;
  /** Index of the frame among this rank's sends in this allreduce, 0-based. */
  readonly frameIndex: number;
  /** Ring step of the frame. */
  readonly t: number;
}

/** What to do with one outgoing frame: send these bytes instead, or stop sending for good. */
export type FaultAction = Buffer | 'stall';

/** Test hook called with each outgoing data frame. */
export interface FaultInjector {
  /** Returns the frame to send (the same buffer for no fault) or 'stall'. */
  beforeSend(site: FrameSite, frame: Buffer): FaultAction;
}

/** Option key under which `RingAllreduce.create` accepts a FaultInjector. */
export const kFaultInjector: unique symbol = Symbol('bbn.collective.faultInjector');
