import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import {
  type LocalServer,
  startTemporalDevServer,
  TEMPORAL_DB_FILENAME,
} from '../../src/devservers/index.ts';
import { portIsFree, processGone, startTestTemporal } from '../helpers/servers.ts';

/** Runs `fn` with a client on `address`, closing the connection on every path. */
async function withClient<T>(address: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address, connectTimeout: 5_000 });
  try {
    return await fn(new Client({ connection, namespace: 'default' }));
  } finally {
    await connection.close();
  }
}

async function assertStopped(server: LocalServer): Promise<void> {
  assert.ok(processGone(server.pid), `temporal pid ${server.pid} still running`);
  assert.ok(await portIsFree(server.port, server.host), `port ${server.port} still taken`);
}

test('temporal dev server - a workflow started before a restart is still there after it (same SQLite file)', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'bbn-temporal-persist-'));
  const servers: LocalServer[] = [];
  try {
    const first = await startTemporalDevServer({ dataDir });
    servers.push(first);
    // No worker polls this queue: the workflow stays RUNNING with its first task pending.
    const started = await withClient(first.address, (client) =>
      client.workflow.start('bbnPersistProbe', {
        taskQueue: 'nobody-polls',
        workflowId: 'persist-probe',
        args: [],
      }),
    );
    await first.stop();
    await assertStopped(first);
    assert.ok(existsSync(join(dataDir, TEMPORAL_DB_FILENAME)), 'a given data dir is kept on stop');

    const second = await startTemporalDevServer({ dataDir });
    servers.push(second);
    const described = await withClient(second.address, (client) =>
      client.workflow.getHandle('persist-probe').describe(),
    );
    assert.equal(described.runId, started.firstExecutionRunId);
    assert.equal(described.type, 'bbnPersistProbe');
    assert.equal(described.status.name, 'RUNNING');
  } finally {
    for (const s of servers) await s.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('temporal dev server - stop ends the process, frees the port and removes its temp data dir', async () => {
  const server = await startTemporalDevServer();
  try {
    assert.match(server.address, /^127\.0\.0\.1:\d+$/);
    assert.ok(existsSync(join(server.dataDir, TEMPORAL_DB_FILENAME)));
    const info = await withClient(server.address, (client) => client.workflowService.getSystemInfo({}));
    assert.ok(info.capabilities, 'getSystemInfo answered');
  } finally {
    await server.stop();
  }
  await assertStopped(server);
  assert.equal(existsSync(server.dataDir), false, 'temp data dir removed');
  await server.stop(); // idempotent
});

test('test helper - no address and no engine: a local Temporal dev server a client can use', async () => {
  const env = { ...process.env };
  delete env.TEMPORAL_ADDRESS;
  const server = await startTestTemporal({ env, engineAnswers: false });
  try {
    assert.equal(server.source, 'local');
    const ns = await withClient(server.address, (client) =>
      client.workflowService.describeNamespace({ namespace: 'default' }),
    );
    assert.equal(ns.namespaceInfo?.name, 'default');
  } finally {
    await server.stop();
  }
});
