/**
 * `bbn` answers at once: the set-up compiles the CLI (dist/), and a command loads only what it
 * uses, so `bbn --help` costs a fraction of a second of CPU instead of seconds of TypeScript
 * compilation and tfjs/Temporal loading. Bounds are on the process's own CPU time (stable on a
 * busy host) with ~2x margin over what it takes, plus a loose wall bound; bench/cli-startup.ts
 * prints the figures against the uncompiled peer.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { ROOT, timeBbn } from '../helpers/cli-timing.ts';

before(() => {
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-dist.mjs')], { cwd: ROOT });
});

describe('bbn start-up', () => {
  it('bbn --help: under 0.5 s of CPU, every command listed', async () => {
    const r = await timeBbn(['--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const command of ['train', 'status', 'report', 'watch', 'worker', 'cancel'])
      assert.match(r.stdout, new RegExp(`^  ${command} `, 'm'));
    assert.ok(r.cpuSeconds < 0.5, `bbn --help took ${r.cpuSeconds.toFixed(2)} s of CPU (bound 0.5 s)`);
    assert.ok(
      r.wallSeconds < 3,
      `bbn --help took ${r.wallSeconds.toFixed(2)} s (bound 3 s on a loaded host)`,
    );
  });

  it('bbn --version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await timeBbn(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${version}\n`);
  });

  it('bbn train --help loads no training code either', async () => {
    const r = await timeBbn(['train', '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /--resume <dir>/);
    assert.ok(r.cpuSeconds < 0.5, `bbn train --help took ${r.cpuSeconds.toFixed(2)} s of CPU (bound 0.5 s)`);
  });
});
