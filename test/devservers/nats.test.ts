import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AckPolicy, connect, type NatsConnection, StringCodec } from 'nats';
import { compareVersions, NATS_MIN_VERSION, startNatsServer } from '../../src/devservers/index.ts';
import { portIsFree, processGone, startTestNats } from '../helpers/servers.ts';

const sc = StringCodec();

async function withNats<T>(url: string, fn: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: url, timeout: 5_000, reconnect: false });
  try {
    return await fn(nc);
  } finally {
    await nc.close();
  }
}

test('nats-server - JetStream KV put/get and a stream publish/consume work', async () => {
  const server = await startNatsServer();
  try {
    assert.match(server.address, /^nats:\/\/127\.0\.0\.1:\d+$/);
    await withNats(server.address, async (nc) => {
      assert.ok(
        compareVersions(nc.info?.version ?? '0', NATS_MIN_VERSION) >= 0,
        `version ${nc.info?.version}`,
      );
      const js = nc.jetstream();
      const kv = await js.views.kv('bbn_devservers_test');
      await kv.put('run.alpha', sc.encode('0.75'));
      assert.equal((await kv.get('run.alpha'))?.string(), '0.75');

      const jsm = await nc.jetstreamManager();
      await jsm.streams.add({ name: 'EVENTS', subjects: ['events.>'] });
      const ack = await js.publish('events.epoch', sc.encode('epoch 3 done'));
      assert.equal(ack.seq, 1);
      await jsm.consumers.add('EVENTS', { durable_name: 'reader', ack_policy: AckPolicy.Explicit });
      const consumer = await js.consumers.get('EVENTS', 'reader');
      const msg = await consumer.next({ expires: 5_000 });
      assert.equal(msg?.subject, 'events.epoch');
      assert.equal(msg?.string(), 'epoch 3 done');
      msg?.ack();
    });
  } finally {
    await server.stop();
  }
});

test('nats-server - a KV value survives a restart on the same data dir', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'bbn-nats-persist-'));
  try {
    const first = await startNatsServer({ dataDir });
    try {
      await withNats(first.address, async (nc) => {
        const kv = await nc.jetstream().views.kv('bbn_persist');
        await kv.put('checkpoint', sc.encode('runs/x/epoch-7'));
      });
    } finally {
      await first.stop();
    }
    const second = await startNatsServer({ dataDir });
    try {
      const got = await withNats(second.address, async (nc) => {
        const kv = await nc.jetstream().views.kv('bbn_persist');
        return (await kv.get('checkpoint'))?.string();
      });
      assert.equal(got, 'runs/x/epoch-7');
    } finally {
      await second.stop();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('nats-server - stop ends the process, frees the port and removes its temp store', async () => {
  const server = await startNatsServer();
  assert.ok(existsSync(server.dataDir));
  await server.stop();
  assert.ok(processGone(server.pid), `nats-server pid ${server.pid} still running`);
  assert.ok(await portIsFree(server.port, server.host), `port ${server.port} still taken`);
  assert.equal(existsSync(server.dataDir), false);
});

test('test helper - NATS_URL given: used as is, and stop leaves that server running', async () => {
  const external = await startNatsServer();
  try {
    const server = await startTestNats({ env: { ...process.env, NATS_URL: external.address } });
    assert.equal(server.source, 'env');
    assert.equal(server.address, external.address);
    await server.stop();
    assert.equal(processGone(external.pid), false);
    const rtt = await withNats(external.address, (nc) => nc.rtt());
    assert.ok(rtt >= 0);
  } finally {
    await external.stop();
  }
});

test('test helper - a NATS_URL that does not answer fails naming the variable', async () => {
  const dead = await startNatsServer();
  await dead.stop(); // its port is now closed
  await assert.rejects(
    startTestNats({ env: { ...process.env, NATS_URL: dead.address }, readyTimeoutMs: 500 }),
    (err: Error) => err.message.startsWith(`NATS_URL=${dead.address} does not answer`),
  );
});

test('test helper - no address and no engine: a local nats-server', async () => {
  const env = { ...process.env };
  delete env.NATS_URL;
  const server = await startTestNats({ env, engineAnswers: false });
  try {
    assert.equal(server.source, 'local');
    assert.ok((await withNats(server.address, (nc) => nc.rtt())) >= 0);
  } finally {
    await server.stop();
  }
});
