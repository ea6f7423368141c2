/**
 * `RunTokenVerifier.guard`, the one-line adoption for any gRPC service (the coordinator's next):
 * a real grpc-js server on loopback with a unary and a server-streaming method, guarded. Calls
 * with the run's token reach the handlers; calls without it or with another run's get
 * UNAUTHENTICATED naming the caller, and the handler never runs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { RunToken, RunTokenVerifier } from '../../src/auth/run-token.ts';

const json = {
  serialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer) => JSON.parse(b.toString()),
};
const SERVICE = {
  echo: {
    path: '/test.Guarded/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
  count: {
    path: '/test.Guarded/Count',
    requestStream: false,
    responseStream: true,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
} satisfies grpc.ServiceDefinition;

const token = RunToken.generate();
let server: grpc.Server;
let client: grpc.Client;
let handled = 0;

before(async () => {
  server = new grpc.Server();
  const verifier = new RunTokenVerifier(token, 'test service');
  server.addService(
    SERVICE,
    verifier.guard({
      echo: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        handled++;
        cb(null, call.request);
      },
      count: (call: grpc.ServerWritableStream<unknown, unknown>) => {
        handled++;
        call.write(1);
        call.write(2);
        call.end();
      },
    }),
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
});

after(() => {
  client?.close();
  server?.forceShutdown();
});

function echo(metadata: grpc.Metadata): Promise<unknown> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      SERVICE.echo.path,
      json.serialize,
      json.deserialize,
      { hi: 1 },
      metadata,
      (e, v) => (e ? reject(e) : resolve(v)),
    ),
  );
}

function count(metadata: grpc.Metadata): Promise<unknown[]> {
  const call = client.makeServerStreamRequest(
    SERVICE.count.path,
    json.serialize,
    json.deserialize,
    {},
    metadata,
  );
  const got: unknown[] = [];
  return new Promise((resolve, reject) => {
    call.on('data', (v) => got.push(v));
    call.on('error', reject);
    call.on('end', () => resolve(got));
  });
}

describe('RunTokenVerifier.guard - any gRPC service', () => {
  it('lets the run through, on unary calls and streams', async () => {
    assert.deepEqual(await echo(token.metadata()), { hi: 1 });
    assert.deepEqual(await count(token.metadata()), [1, 2]);
    assert.equal(handled, 2);
  });

  for (const [name, md] of [
    ['no token', () => new grpc.Metadata()],
    ["another run's token", () => RunToken.generate().metadata()],
  ] as const) {
    it(`refuses ${name} on unary calls and streams, naming the caller; the handler never runs`, async () => {
      const was = handled;
      for (const call of [echo(md()), count(md())]) {
        await assert.rejects(call, (err: grpc.ServiceError) => {
          assert.equal(err.code, grpc.status.UNAUTHENTICATED);
          assert.match(
            err.details,
            /^test service: call from .*127\.0\.0\.1:\d+ has (no|the wrong) run token/,
          );
          assert.ok(!err.details.includes(token.reveal()));
          return true;
        });
      }
      assert.equal(handled, was);
    });
  }
});
