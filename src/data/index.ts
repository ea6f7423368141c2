/**
 * The data layer's public API: data set readers (MNIST, CIFAR binaries, BBN/iNat JSON, synthetic),
 * the long-tail application, augmentation and batch assembly.
 */
export type { DataErrorDetail, ImageDataset, ImageShape, LoadedData, RawImage } from './api.ts';
export { DataError } from './api.ts';
export type { AugmentSpec, TestTransform, TrainTransform } from './augment.ts';
export { augmentSpecFor, outputShape, transformImage } from './augment.ts';
export type { Batch, BatchOptions } from './batch.ts';
export { assembleBatch } from './batch.ts';
export { type CifarKind, loadCifar } from './cifar.ts';
export { InatDataset, loadInat, readInatAnnotations } from './inat.ts';
export { type DatasetConfig, type LoadDataOptions, loadData } from './load.ts';
export { applyLongTail, type LongTailOptions, longTailCounts } from './long-tail.ts';
export { InMemoryDataset, subset } from './memory.ts';
export { loadMnistAll, splitMnist } from './mnist.ts';
export { resizeBilinear } from './resize.ts';
export { makeSynthetic, type SyntheticOptions } from './synthetic.ts';
