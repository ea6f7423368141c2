/**
 * The credentials Secret's TLS files against live TLS servers, end to end:
 * - Temporal: the dev server has no TLS of its own, so it sits behind a TLS front end that
 *   demands a client certificate (as a TLS-terminating load balancer or an mTLS frontend does);
 *   the front end is named as the one stand-in here. `bbn train --temporal` with the Secret's CA,
 *   client pair and server name trains a run through it (client and workflow worker connections);
 *   without the client pair, or without the server-name file the certificate needs, it is refused
 *   with one line and leaves nothing behind.
 * - NATS: a real nats-server with `--tlsverify`; `bbn runs` connects with the Secret's CA and
 *   client pair and is refused without the pair.
 * Certificates are made per test run with the `openssl` command.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { freePort } from '../../src/devservers/index.ts';
import { writeTinyConfig } from '../distributed/fixtures.ts';
import { bbn } from '../helpers/bbn-cli.ts';
import { spawnNatsServer, startTestTemporal, type TestServer } from '../helpers/servers.ts';

const SERVER_NAME = 'bbn-servers.internal';
const dir = mkdtempSync(join(tmpdir(), 'bbn-tls-'));

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, `openssl ${args.join(' ')}:\n${r.stderr}`);
}

/**
 * A CA, a server certificate for SERVER_NAME only (the Temporal front end: no IP address, so the
 * server-name file is needed), one for loopback (nats-server) and a client certificate, as PEM files in `dir`.
 */
function makeCertificates(): void {
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl([
    'req',
    '-x509',
    ...key,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=bbn test CA',
  ]);
  for (const [name, ext] of [
    ['server', `subjectAltName=DNS:${SERVER_NAME}\nextendedKeyUsage=serverAuth\n`],
    ['nats-server', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'],
    ['client', 'extendedKeyUsage=clientAuth\n'],
  ]) {
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(['req', ...key, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=bbn ${name}`]);
    openssl([
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    ]);
  }
}

const pem = (name: string) => readFileSync(join(dir, name));

/** A credentials directory as the chart's Secret mounts it, with `files` (Secret name → PEM file here or text). */
function credentialsDir(files: Record<string, string>): string {
  const d = mkdtempSync(join(dir, 'creds-'));
  for (const [name, source] of Object.entries(files))
    writeFileSync(join(d, name), existsSync(join(dir, source)) ? pem(source) : source);
  return d;
}

/** The TLS front end: mTLS (client certificate required, from our CA), then bytes to `port`. */
function tlsFrontEnd(port: number) {
  const seen = { authorized: 0, refused: 0 };
  const sockets = new Set<Socket>();
  const server: Server = createServer(
    {
      key: pem('server.key'),
      cert: pem('server.crt'),
      ca: pem('ca.crt'),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['h2'],
    },
    (client: TLSSocket) => {
      seen.authorized++;
      const upstream = connect(port, '127.0.0.1');
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('error', () => s.destroy());
        s.on('close', () => sockets.delete(s));
      }
      client.pipe(upstream).pipe(client);
    },
  );
  server.on('tlsClientError', () => seen.refused++);
  return {
    seen,
    listen: (p: number) => new Promise<void>((resolve) => server.listen(p, '127.0.0.1', resolve)),
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

before(makeCertificates);
after(() => rmSync(dir, { recursive: true, force: true }));

describe('Temporal over mTLS (the dev server behind a TLS front end)', () => {
  let temporal: TestServer;
  let front: ReturnType<typeof tlsFrontEnd>;
  let address: string;
  let config: string;
  const trusted = {
    'temporal-ca.crt': 'ca.crt',
    'temporal-client.crt': 'client.crt',
    'temporal-client.key': 'client.key',
    'temporal-server-name': SERVER_NAME,
  };

  before(async () => {
    temporal = await startTestTemporal();
    front = tlsFrontEnd(Number(temporal.address.split(':').at(-1)));
    const port = await freePort();
    await front.listen(port);
    address = `127.0.0.1:${port}`;
    config = writeTinyConfig();
  });

  after(async () => {
    await front?.close();
    await temporal?.stop();
  });

  /** `bbn train` against the front end with the credentials directory holding `creds`. */
  const trainWith = (creds: Record<string, string>, out: string) =>
    bbn(['train', '-c', config, '-o', out, '--temporal', address], undefined, {
      BBN_CREDENTIALS_DIR: credentialsDir(creds),
    }).done;

  it('bbn train with the CA, client pair and server name trains the run through the TLS front end', {
    timeout: 240_000,
  }, async () => {
    const out = join(dir, 'run-ok');
    const r = await trainWith(trusted, out);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(existsSync(join(out, 'summary.json')), 'the run finished');
    assert.ok(
      front.seen.authorized >= 2,
      `client and worker connections passed mTLS (${front.seen.authorized})`,
    );
  });

  it('bbn train without the client pair, or without the server name, is refused in one line and leaves no run directory', {
    timeout: 240_000,
  }, async () => {
    const cases = [
      // The front end demands a client certificate.
      ['no-client-pair', { 'temporal-ca.crt': 'ca.crt', 'temporal-server-name': SERVER_NAME }],
      // The certificate names SERVER_NAME, not 127.0.0.1.
      [
        'no-server-name',
        {
          'temporal-ca.crt': 'ca.crt',
          'temporal-client.crt': 'client.crt',
          'temporal-client.key': 'client.key',
        },
      ],
    ] as const;
    // Both at once: each waits out the connect timeout.
    const results = await Promise.all(cases.map(([name, creds]) => trainWith(creds, join(dir, name))));
    for (const [i, r] of results.entries()) {
      const text = (r.stdout + r.stderr).trim();
      assert.equal(r.code, 2, `${cases[i][0]}: exit 2\n${text}`);
      assert.doesNotMatch(text, /^\s+at /m, `no stack trace:\n${text}`);
      assert.match(
        text,
        new RegExp(
          `^bbn: no Temporal server answers at ${address.replaceAll('.', '\\.')}, with TLS from `,
          'm',
        ),
      );
      assert.ok(!existsSync(join(dir, cases[i][0])), 'no run directory was created');
    }
  });
});

describe('NATS over mTLS (a real nats-server with --tlsverify)', () => {
  let nats: ChildProcess;
  let url: string;

  before(async () => {
    const store = join(dir, 'js');
    mkdirSync(store);
    ({ url, child: nats } = await spawnNatsServer([
      ...['-js', '--store_dir', store, '--tlsverify', '--tlscacert', join(dir, 'ca.crt')],
      ...['--tlscert', join(dir, 'nats-server.crt'), '--tlskey', join(dir, 'nats-server.key')],
    ]));
  });

  after(() => {
    nats?.kill('SIGKILL');
  });

  const runs = (credsDir: string) =>
    spawnSync(
      process.execPath,
      [join(import.meta.dirname, '..', '..', 'bin', 'bbn.mjs'), 'runs', '--nats', url],
      {
        env: { ...process.env, BBN_CREDENTIALS_DIR: credsDir },
        encoding: 'utf8',
        timeout: 60_000,
      },
    );

  it('bbn runs connects with the CA and client pair, and is refused in one line without the pair', () => {
    const pair = { 'nats-client.crt': 'client.crt', 'nats-client.key': 'client.key' };
    const ok = runs(credentialsDir({ 'nats-ca.crt': 'ca.crt', ...pair }));
    assert.equal(ok.status, 0, ok.stderr);
    const refusedDir = credentialsDir({ 'nats-ca.crt': 'ca.crt' });
    const refused = runs(refusedDir);
    assert.equal(refused.status, 2, refused.stderr);
    assert.equal(
      refused.stderr.trim(),
      `bbn: no NATS server answers at ${url}, with TLS from ${refusedDir} (TIMEOUT)`,
    );
  });
});
