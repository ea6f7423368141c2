/**
 * Fault injection for tests of the ring's failure handling and buffer lifetimes: a hook that sees
 * every data frame just before it is written and may replace it or stop sending altogether, and
 * one that may hold the upstream edge (stop reading) after a received frame was applied. Reached only through
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

/** Test hooks of one ring member. */
export interface FaultInjector {
  /**
   * Called with each outgoing data frame; returns the frame to send (the same buffer for no
   * fault) or 'stall'. A ring with this hook copies every frame (no zero-copy sends).
   */
  beforeSend?(site: FrameSite, frame: Buffer): FaultAction;
  /**
   * Called after a received data frame was applied (`site.t` is its ring step, `frameIndex` its
   * index among this rank's received frames); a returned promise holds the upstream edge
   * (nothing more is read from it) until it settles.
   */
  afterReceive?(site: FrameSite): Promise<void> | undefined;
}

/** Option key under which `RingAllreduce.create` accepts a FaultInjector. */
export const kFaultInjector: unique symbol = Symbol('bbn.collective.faultInjector');

/** Runs the `afterReceive` hook, if any, and holds `source` (stops reading) until its promise settles. */
export function holdIfAsked(
  faults: FaultInjector | undefined,
  site: FrameSite,
  source: { pause(): void; resume(): void },
): void {
  const hold = faults?.afterReceive?.(site);
  if (!hold) return;
  source.pause();
  void hold.finally(() => source.resume());
}
