/**
 * Identity for wasm without a copy. The engine clones every tensor it saves for the backward pass
 * through this kernel; the stock wasm kernel copies the whole buffer each time (hundreds of
 * activation-sized copies per ResNet step). Tensor data is immutable, so, as on the cpu backend,
 * the output shares the input's buffer and only the reference count goes up.
 */
import * as tf from '@tensorflow/tfjs';
import { wasmKernel } from './kernel_utils.ts';

/** Kernel config: replaces the stock Identity with a reference-counted share. */
export const identityConfig = wasmKernel<keyof tf.IdentityInputs, object>(
  tf.Identity,
  ['x'],
  ({ x }, _attrs, backend) => {
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  },
);
