import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Connection } from '@temporalio/client';
import { connect } from 'nats';
import { startDevServers, TEMPORAL_DB_FILENAME } from '../../src/devservers/index.ts';
import { portIsFree, processGone } from '../helpers/servers.ts';

test('startDevServers - both servers answer, keep state under one data dir, and stop together', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'bbn-pair-'));
  try {
    const servers = await startDevServers({ dataDir });
    try {
      const conn = await Connection.connect({ address: servers.temporal.address, connectTimeout: 5_000 });
      try {
        const ns = await conn.workflowService.describeNamespace({ namespace: 'default' });
        assert.equal(ns.namespaceInfo?.name, 'default');
      } finally {
        await conn.close();
      }
      const nc = await connect({ servers: servers.nats.address, timeout: 5_000, reconnect: false });
      try {
        assert.ok((await nc.rtt()) >= 0);
      } finally {
        await nc.close();
      }
      assert.ok(existsSync(join(dataDir, 'temporal', TEMPORAL_DB_FILENAME)));
      assert.ok(existsSync(join(dataDir, 'nats', 'jetstream')));
    } finally {
      await servers.stop();
    }
    for (const s of [servers.temporal, servers.nats]) {
      assert.ok(processGone(s.pid), `${s.name} pid ${s.pid} still running`);
      assert.ok(await portIsFree(s.port, s.host), `${s.name} port ${s.port} still taken`);
    }
    assert.ok(existsSync(join(dataDir, 'temporal', TEMPORAL_DB_FILENAME)), 'a given data dir is kept');
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
