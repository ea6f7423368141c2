/**
 * The chart's credentials Secret, read: the files under BBN_CREDENTIALS_DIR become the Temporal
 * connection's TLS (CA, client pair, server name) and API key and the NATS connection's TLS and
 * authentication; a half pair, an empty file, two NATS auth methods or a missing directory are one
 * clear error naming the file. End to end: a real nats-server that demands a token accepts
 * `bbn runs` only when the credentials directory holds it.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CredentialsError, readCredentials, temporalConnectionOptions } from '../../src/auth/credentials.ts';
import { RunToken } from '../../src/auth/run-token.ts';
import { natsConnectionOptions } from '../../src/events/credentials.ts';
import { spawnNatsServer } from '../helpers/servers.ts';

const ROOT = join(import.meta.dirname, '..', '..');

/** A credentials directory holding `files` (name → content). */
function credentialsDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'bbn-creds-'));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

describe('credentials files', () => {
  it('none configured: no options (the plain local connection)', () => {
    assert.equal(readCredentials(undefined), undefined);
    assert.deepEqual(temporalConnectionOptions(undefined), {});
    assert.deepEqual(natsConnectionOptions(undefined), {});
    assert.deepEqual(temporalConnectionOptions(readCredentials(credentialsDir({}))), {});
  });

  it('Temporal: CA, client pair, server name and API key become TLS options and apiKey', () => {
    const dir = credentialsDir({
      'temporal-ca.crt': 'CA PEM\n',
      'temporal-client.crt': 'CLIENT PEM\n',
      'temporal-client.key': 'KEY PEM\n',
      'temporal-server-name': 'temporal.internal\n',
      'temporal-api-key': 'key-123\n',
    });
    const o = temporalConnectionOptions(readCredentials(dir));
    assert.deepEqual(o.tls?.serverRootCACertificate, Buffer.from('CA PEM\n'));
    assert.deepEqual(o.tls?.clientCertPair, {
      crt: Buffer.from('CLIENT PEM\n'),
      key: Buffer.from('KEY PEM\n'),
    });
    assert.equal(o.tls?.serverNameOverride, 'temporal.internal');
    assert.equal(o.apiKey, 'key-123');
    // An API key alone still means TLS (to the system's CAs).
    assert.deepEqual(
      temporalConnectionOptions(readCredentials(credentialsDir({ 'temporal-api-key': 'k' }))),
      {
        tls: {},
        apiKey: 'k',
      },
    );
  });

  it('NATS: CA and client pair become TLS; a token, user/password or .creds authenticate', () => {
    const tls = natsConnectionOptions(
      readCredentials(
        credentialsDir({
          'nats-ca.crt': 'CA',
          'nats-client.crt': 'C',
          'nats-client.key': 'K',
          'nats-token': 't0k\n',
        }),
      ),
    );
    assert.deepEqual(tls.tls, { ca: 'CA', cert: 'C', key: 'K' });
    assert.equal(tls.token, 't0k');
    const user = natsConnectionOptions(
      readCredentials(credentialsDir({ 'nats-user': 'bbn', 'nats-password': 'pw' })),
    );
    assert.deepEqual(user, { user: 'bbn', pass: 'pw' });
    const creds = natsConnectionOptions(
      readCredentials(
        credentialsDir({
          'nats.creds':
            '-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.sig\n------END NATS USER JWT------\n\n' +
            '-----BEGIN USER NKEY SEED-----\nSUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4\n------END USER NKEY SEED------\n',
        }),
      ),
    );
    assert.equal(typeof creds.authenticator, 'function');
  });

  const bad: [string, Record<string, string>, RegExp][] = [
    [
      'a client certificate without its key',
      { 'temporal-client.crt': 'C' },
      /has temporal-client\.crt but not temporal-client\.key; give both or neither/,
    ],
    [
      'a NATS key without its certificate',
      { 'nats-client.key': 'K' },
      /has nats-client\.key but not nats-client\.crt/,
    ],
    ['a user without a password', { 'nats-user': 'u' }, /has nats-user but not nats-password/],
    ['an empty file', { 'temporal-ca.crt': '\n' }, /credentials file .*temporal-ca\.crt is empty/],
    [
      'two NATS auth methods',
      { 'nats-token': 't', 'nats-user': 'u', 'nats-password': 'p' },
      /has nats-token and nats-user\/nats-password: give one way/,
    ],
  ];
  for (const [name, files, expect] of bad) {
    it(`refuses ${name}, naming the file`, () => {
      const dir = credentialsDir(files);
      assert.throws(
        () => natsConnectionOptions(readCredentials(dir)),
        (err: Error) =>
          err instanceof CredentialsError && expect.test(err.message) && !/\bpw\b|t0k/.test(err.message),
      );
    });
  }

  it('refuses a configured directory that did not mount', () => {
    assert.throws(
      () => readCredentials(join(tmpdir(), 'bbn-no-such-creds')),
      /credentials directory .* \(BBN_CREDENTIALS_DIR\) does not exist/,
    );
  });
});

describe('credentials - a real nats-server that demands a token', () => {
  let nats: ChildProcess;
  let url: string;
  const token = RunToken.generate().reveal();

  before(async () => {
    ({ url, child: nats } = await spawnNatsServer([
      '--auth',
      token,
      '-js',
      '--store_dir',
      mkdtempSync(join(tmpdir(), 'bbn-js-')),
    ]));
  });

  after(() => {
    nats?.kill('SIGKILL');
  });

  const runs = (env: NodeJS.ProcessEnv) =>
    spawnSync(process.execPath, [join(ROOT, 'bin', 'bbn.mjs'), 'runs', '--nats', url], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });

  it('bbn runs connects with the token from BBN_CREDENTIALS_DIR, and is refused without it', () => {
    const withToken = runs({ BBN_CREDENTIALS_DIR: credentialsDir({ 'nats-token': `${token}\n` }) });
    assert.equal(withToken.status, 0, withToken.stderr);
    const without = runs({ BBN_CREDENTIALS_DIR: credentialsDir({}) });
    assert.notEqual(without.status, 0);
    assert.match(without.stderr, /AUTHORIZATION_VIOLATION|Authorization Violation/i);
    for (const r of [withToken, without])
      assert.ok(!(r.stdout + r.stderr).includes(token), 'the token is never printed');
  });
});
