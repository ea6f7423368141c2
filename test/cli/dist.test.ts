/**
 * The compiled CLI (bin/dist.mjs, scripts/build-dist.mjs) in a throwaway copy of the entry and
 * build scripts, with a one-file src/: bbn runs dist/ only while dist/ was built from exactly the
 * sources on disk, and runs the edited TypeScript (never the stale JavaScript) after any change.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

const ROOT = join(import.meta.dirname, '..', '..');
const copy = mkdtempSync(join(tmpdir(), 'bbn-dist-'));
const MAIN_TS = join(copy, 'src', 'cli', 'main.ts');
const MAIN_JS = join(copy, 'dist', 'cli', 'main.js');

function run(
  file: string,
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [file, ...args],
      { cwd: copy, env: { ...process.env, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? -1) : 0, out: stdout + stderr }),
    );
  });
}
const bbn = (env: NodeJS.ProcessEnv = {}) => run(join(copy, 'bin', 'bbn.mjs'), [], env);
const build = (...args: string[]) => run(join(copy, 'scripts', 'build-dist.mjs'), args);
/** A main.ts that only TypeScript runs (a type annotation), printing `text`. */
const writeMain = (text: string) =>
  writeFileSync(
    MAIN_TS,
    `const text: string = ${JSON.stringify(text)};\nprocess.stdout.write(\`\${text}\\n\`);\n`,
  );

before(() => {
  for (const f of [
    'bin/bbn.mjs',
    'bin/dist.mjs',
    'scripts/build-dist.mjs',
    'package.json',
    'tsconfig.json',
    'package-lock.json',
  ])
    cpSync(join(ROOT, f), join(copy, f));
  symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
  mkdirSync(join(copy, 'src', 'cli'), { recursive: true });
  writeMain('source v1');
});

after(() => rmSync(copy, { recursive: true, force: true }));

describe('bbn runs compiled JavaScript only when it matches the sources', () => {
  it('without dist/ it runs the TypeScript through tsx', async () => {
    assert.deepEqual(await bbn(), { code: 0, out: 'source v1\n' });
    assert.equal((await build('--check')).code, 1);
  });

  it('a build writes dist/ and its stamp; bbn then runs dist/; a second build does nothing', async () => {
    assert.match((await build()).out, /^dist: built/);
    assert.ok(existsSync(MAIN_JS));
    assert.equal((await build('--check')).code, 0);
    // Mark the compiled file so that its run is told apart from the source's.
    writeFileSync(MAIN_JS, "process.stdout.write('compiled\\n');\n");
    assert.deepEqual(await bbn(), { code: 0, out: 'compiled\n' });
    assert.deepEqual(await bbn({ BBN_FROM_SOURCE: '1' }), { code: 0, out: 'source v1\n' });
    assert.match((await build()).out, /^dist: current/);
  });

  it('after an edit of a source, or a new source file, the stale dist/ never runs', async () => {
    writeMain('source v2');
    assert.deepEqual(await bbn(), { code: 0, out: 'source v2\n' });
    assert.equal((await build('--check')).code, 1);
    assert.match((await build()).out, /^dist: built/);
    writeFileSync(MAIN_JS, "process.stdout.write('compiled v2\\n');\n");
    assert.deepEqual(await bbn(), { code: 0, out: 'compiled v2\n' });
    writeFileSync(join(copy, 'src', 'extra.ts'), 'export const x = 1;\n');
    assert.deepEqual(await bbn(), { code: 0, out: 'source v2\n' });
  });

  it('a rebuild removes outputs whose source is gone', async () => {
    assert.match((await build()).out, /^dist: built/);
    assert.ok(existsSync(join(copy, 'dist', 'extra.js')));
    rmSync(join(copy, 'src', 'extra.ts'));
    assert.match((await build()).out, /^dist: built/);
    assert.ok(!existsSync(join(copy, 'dist', 'extra.js')));
    assert.deepEqual(await bbn(), { code: 0, out: 'source v2\n' });
  });
});
