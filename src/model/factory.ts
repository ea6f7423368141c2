/** `createModel`: builds a BBN or single-branch model from a spec, initialised from an `Rng`. */
import type { Rng } from '../core/rng.ts';
import type { BbnModel, ModelSpec, SingleModel } from './api.ts';
import { BbnNetwork } from './bbn-model.ts';
import { SingleNetwork } from './single-model.ts';

/**
 * A model for `spec`; all initial values come from `rng` (each tensor from `rng.split(name)`), so
 * the same spec and seed give the same model on every backend. Throws `ModelError` on a bad spec.
 */
export function createModel(spec: ModelSpec & { readonly variant: 'bbn' }, rng: Rng): BbnModel;
export function createModel(spec: ModelSpec & { readonly variant: 'single' }, rng: Rng): SingleModel;
export function createModel(spec: ModelSpec, rng: Rng): BbnModel | SingleModel;
export function createModel(spec: ModelSpec, rng: Rng): BbnModel | SingleModel {
  return spec.variant === 'bbn' ? new BbnNetwork(spec, rng) : new SingleNetwork(spec, rng);
}
