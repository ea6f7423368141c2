/**
 * `bbn runs` against a real nats-server started without JetStream (`-js` left out): the run list
 * is a JetStream key-value bucket, so the command must say that in one line and exit 2 (a user's
 * setup), not die on the client's uncaught 503 with a stack trace.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT } from '../helpers/bbn-process.ts';
import { spawnNatsServer } from '../helpers/servers.ts';

let nats: ChildProcess | undefined;
let url = '';

before(async () => {
  ({ url, child: nats } = await spawnNatsServer());
});

after(() => {
  nats?.kill('SIGKILL');
});

describe('bbn runs - a NATS server without JetStream', () => {
  it('one clear line naming the server and the fix, exit 2, no stack trace', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'bbn.mjs'), 'runs', '--nats', url], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0],
      new RegExp(
        `^bbn: the NATS server at ${url.slice('nats://'.length)} has no JetStream \\(start nats-server with -js\\)`,
      ),
    );
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });
});
