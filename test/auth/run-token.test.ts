/**
 * The run token: 256 random bits, never printed (String, JSON, util.inspect, template strings,
 * error messages), matched in constant time, read from the environment, a file or the credentials
 * directory in that order, with one clear error naming the source (never the value).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import {
  ensureRunToken,
  RUN_TOKEN_METADATA_KEY,
  RunToken,
  RunTokenError,
  RunTokenVerifier,
  runTokenFromEnv,
} from '../../src/auth/run-token.ts';

const dir = () => mkdtempSync(join(tmpdir(), 'bbn-token-'));

describe('run token', () => {
  it('is 256 random bits (43 base64url characters), a new one each time', () => {
    const a = RunToken.generate().reveal();
    const b = RunToken.generate().reveal();
    assert.match(a, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(a, 'base64url').length, 32);
    assert.notEqual(a, b);
  });

  it('never prints: String, template, JSON, inspect and console all show [redacted]', () => {
    const t = RunToken.generate();
    const secret = t.reveal();
    const shown = [
      String(t),
      `${t}`,
      JSON.stringify({ token: t, nested: [t] }),
      inspect({ t }),
      inspect(t, { showHidden: true, depth: 5 }),
    ];
    for (const s of shown) {
      assert.ok(!s.includes(secret), s);
      assert.match(s, /\[redacted\]/);
    }
  });

  it('matches only itself; the verifier refuses a missing or wrong token naming the caller', () => {
    const t = RunToken.generate();
    assert.equal(t.matches(t.reveal()), true);
    assert.equal(t.matches(`${t.reveal()}x`), false);
    assert.equal(t.matches(''), false);
    const v = new RunTokenVerifier(t, 'test server');
    assert.equal(v.check(t.metadata(), 'ipv4:10.0.0.9:5000'), undefined);
    const none = v.check(new grpc.Metadata(), 'ipv4:10.0.0.9:5000');
    assert.equal(none?.code, grpc.status.UNAUTHENTICATED);
    assert.match(none?.details ?? '', /^test server: call from ipv4:10\.0\.0\.9:5000 has no run token/);
    const wrong = v.check(RunToken.generate().metadata(), 'ipv4:10.0.0.9:5000');
    assert.match(wrong?.details ?? '', /has the wrong run token/);
    const twice = t.metadata();
    twice.add(RUN_TOKEN_METADATA_KEY, t.reveal());
    assert.equal(v.check(twice, 'p')?.code, grpc.status.UNAUTHENTICATED, 'two tokens are not one');
    assert.equal(new RunTokenVerifier(undefined, 'open').check(new grpc.Metadata(), 'p'), undefined);
  });

  it('comes from BBN_RUN_TOKEN, else BBN_RUN_TOKEN_FILE, else run-token in BBN_CREDENTIALS_DIR', () => {
    const a = RunToken.generate().reveal();
    const b = RunToken.generate().reveal();
    const c = RunToken.generate().reveal();
    const creds = dir();
    writeFileSync(join(creds, 'run-token'), `${c}\n`);
    const file = join(dir(), 'token');
    writeFileSync(file, `  ${b}\n`);
    const env = { BBN_RUN_TOKEN: a, BBN_RUN_TOKEN_FILE: file, BBN_CREDENTIALS_DIR: creds };
    assert.equal(runTokenFromEnv(env)?.reveal(), a);
    assert.equal(runTokenFromEnv({ ...env, BBN_RUN_TOKEN: '' })?.reveal(), b);
    assert.equal(runTokenFromEnv({ BBN_CREDENTIALS_DIR: creds })?.reveal(), c);
    assert.equal(runTokenFromEnv({ BBN_CREDENTIALS_DIR: dir() }), undefined, 'no run-token in the Secret');
    assert.equal(runTokenFromEnv({}), undefined);
  });

  it('ensureRunToken keeps a configured token and otherwise puts a new one in the environment', () => {
    const given = RunToken.generate().reveal();
    assert.equal(ensureRunToken({ BBN_RUN_TOKEN: given }).reveal(), given);
    const env: NodeJS.ProcessEnv = {};
    const made = ensureRunToken(env);
    assert.equal(env.BBN_RUN_TOKEN, made.reveal());
  });

  it('refuses bad tokens with one line naming the source, not the value', () => {
    const short = 'abc123';
    const cases: [NodeJS.ProcessEnv, RegExp][] = [
      [{ BBN_RUN_TOKEN: short }, /^run token from \$BBN_RUN_TOKEN is too short/],
      [{ BBN_RUN_TOKEN: `${'a'.repeat(30)} b` }, /has characters other than base64/],
      [{ BBN_RUN_TOKEN_FILE: join(dir(), 'absent') }, /^cannot read the run token file .*absent: ENOENT/],
    ];
    const empty = join(dir(), 'empty');
    writeFileSync(empty, '\n');
    cases.push([{ BBN_RUN_TOKEN_FILE: empty }, /^run token from .*empty is empty/]);
    for (const [env, expect] of cases) {
      assert.throws(
        () => runTokenFromEnv(env),
        (err: Error) => {
          assert.ok(err instanceof RunTokenError);
          assert.match(err.message, expect);
          assert.ok(!err.message.includes(short), 'the value is not in the message');
          return true;
        },
      );
    }
  });
});
