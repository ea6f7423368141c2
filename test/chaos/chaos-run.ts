/** The size of every chaos run: the tiny problem with 3 epochs of 300 images (18 steps an epoch). */
export const CHAOS_RUN: readonly string[] = ['dataset.perClass=160', 'train.epochs=3'];
