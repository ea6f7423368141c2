/**
 * A process outside the run for the ring authentication tests: dials a ring peer server
 * (argv[2]), with the token in $INTRUDER_TOKEN as call metadata if set, sends one well-formed
 * hello for run argv[3] (generation 1, as rank 1 to rank 0) and then a data frame, and prints the
 * call's final gRPC status as one JSON line (code, details) and whether any reply arrived.
 */
import * as grpc from '@grpc/grpc-js';
import { RUN_TOKEN_METADATA_KEY } from '../../src/auth/run-token.ts';
import { encodeRequest, RAW_RING_METHOD, type RawClientCall } from '../../src/collective/internal.ts';

const [address, runId] = process.argv.slice(2);
const client = new grpc.Client(address, grpc.credentials.createInsecure());
const metadata = new grpc.Metadata();
if (process.env.INTRUDER_TOKEN) metadata.set(RUN_TOKEN_METADATA_KEY, process.env.INTRUDER_TOKEN);
const call = client.makeBidiStreamRequest(
  RAW_RING_METHOD.path,
  RAW_RING_METHOD.requestSerialize,
  RAW_RING_METHOD.responseDeserialize,
  metadata,
) as RawClientCall;
let replies = 0;
call.on('data', () => {
  replies++;
});
call.on('error', () => {});
call.on('status', (s) => {
  process.stdout.write(`${JSON.stringify({ code: s.code, details: s.details, replies })}\n`);
  client.close();
});
call.write(encodeRequest({ hello: { runId, generation: 1, worldSize: 2, rank: 1, upstreamRank: 0 } }));
call.write(Buffer.from([1, 2, 3, 4]));
