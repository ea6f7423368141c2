/**
 * The test helper's container path (`npm run test:containers`, with the engine that
 * scripts/setup-containers.sh sets up): BBN_TEST_CONTAINERS=1 gives Temporal and NATS in
 * testcontainers containers that clients can use; without it the helper starts local binaries
 * even though an engine answers; asked for containers with no engine, it fails and says why.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { connect } from 'nats';
import { probeContainerEngine } from '../../src/devservers/index.ts';
import { startTestNats, startTestTemporal } from '../helpers/servers.ts';
import { podman, TEST_LABEL } from './podman.ts';

const env = { ...process.env };
delete env.TEMPORAL_ADDRESS;
delete env.NATS_URL;

const testContainers = async () =>
  (await podman(['ps', '-aq', '--filter', `label=${TEST_LABEL}`])).split('\n').filter(Boolean);

describe('test helper - containers when asked for', () => {
  it('the engine is up for this suite (DOCKER_HOST and BBN_TEST_CONTAINERS=1 are set)', async () => {
    assert.equal(process.env.BBN_TEST_CONTAINERS, '1', 'run through `npm run test:containers`');
    assert.equal((await probeContainerEngine()).answers, true);
  });

  it('Temporal: a container a client can use; stop removes it', async () => {
    const before = await testContainers();
    const server = await startTestTemporal({ env });
    try {
      assert.equal(server.source, 'container');
      assert.equal((await testContainers()).length, before.length + 1);
      const connection = await Connection.connect({ address: server.address, connectTimeout: 5_000 });
      try {
        const client = new Client({ connection, namespace: 'default' });
        const handle = await client.workflow.start('bbnContainerProbe', {
          taskQueue: 'nobody-polls',
          workflowId: 'container-probe',
        });
        assert.equal((await handle.describe()).status.name, 'RUNNING');
      } finally {
        await connection.close();
      }
    } finally {
      await server.stop();
    }
    assert.deepEqual(await testContainers(), before);
  });

  it('NATS: a container with JetStream; stop removes it', async () => {
    const before = await testContainers();
    const server = await startTestNats({ env });
    try {
      assert.equal(server.source, 'container');
      const nc = await connect({ servers: server.address });
      try {
        const jsm = await nc.jetstreamManager();
        await jsm.streams.add({ name: 'probe', subjects: ['probe.>'] });
        const ack = await nc.jetstream().publish('probe.x', new TextEncoder().encode('hi'));
        assert.equal(ack.seq, 1);
      } finally {
        await nc.close();
      }
    } finally {
      await server.stop();
    }
    assert.deepEqual(await testContainers(), before);
  });

  it('without BBN_TEST_CONTAINERS=1 the helper uses the local binary, engine or not', async () => {
    const plain = { ...env };
    delete plain.BBN_TEST_CONTAINERS;
    const server = await startTestNats({ env: plain });
    try {
      assert.equal(server.source, 'local');
    } finally {
      await server.stop();
    }
  });

  it('containers asked for but no engine answers: it fails, naming what it tried', async () => {
    await assert.rejects(
      startTestNats({ env: { ...env, DOCKER_HOST: 'unix:///nonexistent/engine.sock' } }),
      /BBN_TEST_CONTAINERS=1 but no container engine answered \(tried unix:\/\/\/nonexistent\/engine\.sock\)/,
    );
  });
});
