#!/usr/bin/env node
/**
 * Compiles src/ to dist/ (one JavaScript file per TypeScript file, same layout, so every
 * `import.meta.url`-relative path still points where it did), with esbuild: the compiler tsx runs
 * on every call, so dist/ behaves exactly like the sources under tsx, and a full build takes well
 * under a second. Relative imports are rewritten from `.ts` to `.js`; packages stay imports.
 * Other files under src/ (the generated protobuf JavaScript) are copied as they are.
 *
 * Idempotent: does nothing when dist/ is already stamped with the current source hash (see
 * bin/dist.mjs); otherwise removes the stamp, writes the files, removes outputs whose source is
 * gone, and writes the stamp last, only if the sources did not change during the build.
 * `--check` only reports (exit 1 when dist/ is stale).
 */
import { copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { DIST, distStamp, ROOT, STAMP, sourceHash } from '../bin/dist.mjs';

const SRC = join(ROOT, 'src');

function listFiles(dir) {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath ?? e.path, e.name)))
    .sort();
}

/** Keeps every import an import; rewrites relative `.ts` specifiers to the `.js` the build writes. */
const externalImports = {
  name: 'external-imports',
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      if (args.kind === 'entry-point') return undefined;
      const relativePath = args.path.startsWith('./') || args.path.startsWith('../');
      return { path: relativePath ? args.path.replace(/\.ts$/, '.js') : args.path, external: true };
    });
  },
};

/** Builds dist/ unless it is current; returns what it did. */
export async function buildDist() {
  const before = sourceHash();
  if (distStamp() === before) return 'current';
  const { build } = await import('esbuild');
  rmSync(STAMP, { force: true });
  const files = listFiles(SRC);
  const sources = files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
  const copies = files.filter((f) => !f.endsWith('.ts'));
  await build({
    entryPoints: sources.map((f) => join(SRC, f)),
    outbase: SRC,
    outdir: DIST,
    outExtension: { '.js': '.js' },
    bundle: true,
    plugins: [externalImports],
    platform: 'node',
    format: 'esm',
    target: 'node20',
    tsconfig: join(ROOT, 'tsconfig.json'),
    sourcemap: false,
    logLevel: 'warning',
    absWorkingDir: ROOT,
  });
  for (const f of copies) {
    mkdirSync(dirname(join(DIST, f)), { recursive: true });
    copyFileSync(join(SRC, f), join(DIST, f));
  }
  const wanted = new Set([...sources.map((f) => f.replace(/\.ts$/, '.js')), ...copies]);
  for (const f of listFiles(DIST)) if (!wanted.has(f) && join(DIST, f) !== STAMP) rmSync(join(DIST, f));
  if (sourceHash() !== before) return 'sources changed during the build; not stamped';
  writeFileSync(STAMP, `${before}\n`);
  return 'built';
}

if (process.argv[1] && import.meta.url.endsWith(relative(ROOT, process.argv[1]).replaceAll('\\', '/'))) {
  if (process.argv.includes('--check')) {
    const current = distStamp() === sourceHash();
    process.stdout.write(`dist: ${current ? 'current' : 'stale'}\n`);
    process.exit(current ? 0 : 1);
  }
  const t0 = performance.now();
  const what = await buildDist();
  process.stdout.write(`dist: ${what} (${Math.round(performance.now() - t0)} ms)\n`);
  if (what.startsWith('sources changed')) process.exit(1);
}
