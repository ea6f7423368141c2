/**
 * The wasm training kernels, in one list. Registering them (and saving the stock kernels they
 * replace) is done by `registerWasmTrainingKernels` in `../wasm-backend.ts`, so importing this
 * file has no side effects.
 */
import type * as tf from '@tensorflow/tfjs';
import { addConfig } from './Add.ts';
import { batchMatMulConfig } from './BatchMatMul.ts';
import { conv2DBackpropFilterConfig } from './Conv2DBackpropFilter.ts';
import { conv2DBackpropInputConfig } from './Conv2DBackpropInput.ts';
import { fusedBatchNormConfig } from './FusedBatchNorm.ts';
import { identityConfig } from './Identity.ts';
import { meanConfig } from './Mean.ts';
import { multiplyConfig } from './Multiply.ts';
import { sliceConfig } from './Slice.ts';
import { subConfig } from './Sub.ts';
import { sumConfig } from './Sum.ts';
import { tileConfig } from './Tile.ts';

/** Every kernel this project registers for the wasm backend. */
export const wasmTrainingKernelConfigs: readonly tf.KernelConfig[] = [
  addConfig,
  batchMatMulConfig,
  conv2DBackpropFilterConfig,
  conv2DBackpropInputConfig,
  fusedBatchNormConfig,
  identityConfig,
  meanConfig,
  multiplyConfig,
  sliceConfig,
  subConfig,
  sumConfig,
  tileConfig,
];
