#!/usr/bin/env node
// Entry point of the `bbn` command. Runs the compiled JavaScript in dist/ when it was built from
// exactly the sources on disk (bin/dist.mjs; set-up builds it, `npm run build` rebuilds it), else
// the TypeScript sources through tsx: the same code, with seconds more start-up.
// BBN_FROM_SOURCE=1 always runs the sources.
import { distIsCurrent } from './dist.mjs';

if (process.env.BBN_FROM_SOURCE !== '1' && distIsCurrent()) {
  await import('../dist/cli/main.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
