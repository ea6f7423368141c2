/**
 * Check of the socket handover (adopt): rings of W = 2, 3 and 4 native planes in this process
 * over data connections that JavaScript made the way src/collective does (js-sockets.ts:
 * DataListener, a plain net.connect, the `BBNT` + token greeting). Every rank's allreduces, one
 * after another on the same sockets, must give the exact sums; the descriptors' file flags
 * (O_NONBLOCK, as libuv set them) must be unchanged; and after the planes are closed, JavaScript
 * writes the orderly close on each of its sockets and each peer's JavaScript must read exactly
 * that marker and the end of the stream: the plane closed no descriptor and left both streams
 * at a message boundary.
 * Bench only: `node --import tsx bench/peers/native/handover-check.ts` after build.sh; exit 1 on
 * any failure. `HANDOVER_BREAK=no-readstop` hands over sockets libuv still reads (must fail).
 */
import { BYE, connectRing, fdFlags, handOver, type PlaneError, readMessages, rp } from './js-sockets.ts';

const RUN = 'handover';
/** Short enough that the deliberate break fails in seconds instead of hanging. */
const TIMEOUT_MS = 5_000;
let failures = 0;
function fail(what: string): void {
  failures++;
  console.error(`FAIL ${what}`);
}

for (const W of [2, 3, 4]) {
  const ring = await connectRing(W);
  const fds = ring.recv.map((recv, r) => [handOver(recv), handOver(ring.send[r])]);
  const flags = fds.map((pair) => pair.map(fdFlags));
  const planes = fds.map(([recvFd, sendFd], r) => {
    const plane = rp.create(r, W, RUN, 1, TIMEOUT_MS);
    rp.adopt(plane, recvFd, sendFd);
    return plane;
  });
  for (const [n, chunkBytes] of [
    [0, 8],
    [2, 8],
    [13, 8],
    [1_000_003, 4096],
    [3_000_001, 1 << 20],
  ]) {
    const arrays = planes.map((_, r) => Float32Array.from({ length: n }, (_, i) => (i % 7) + r / 2));
    const results = await Promise.allSettled(planes.map((p, r) => rp.allreduce(p, arrays[r], chunkBytes)));
    const errors = results.flatMap((x) =>
      x.status === 'rejected' ? [(x.reason as PlaneError).message] : [],
    );
    let bad = 0;
    for (const a of arrays) {
      for (let i = 0; i < n; i++) if (a[i] !== W * (i % 7) + (W * (W - 1)) / 4) bad++;
    }
    if (errors.length > 0 || bad > 0) fail(`W=${W} n=${n}: ${bad} wrong elements; ${errors.join('; ')}`);
    console.log(
      `W=${W} n=${n} chunk=${chunkBytes} B over JavaScript's sockets: ${errors.length === 0 && bad === 0 ? 'exact sums' : 'FAILED'}`,
    );
    if (errors.length > 0) break;
  }
  for (const p of planes) rp.close(p);
  const after = fds.map((pair) => pair.map(fdFlags));
  if (JSON.stringify(after) !== JSON.stringify(flags)) {
    fail(`W=${W}: file flags changed: ${JSON.stringify(flags)} -> ${JSON.stringify(after)}`);
  }
  // JavaScript takes its sockets back: each end writes the orderly close, each peer must read it.
  const reads = [...ring.recv, ...ring.send].map((s) => readMessages(s).ended);
  for (const s of [...ring.recv, ...ring.send]) s.end(BYE);
  const got = await Promise.all(reads);
  const clean = got.filter((g) => g.byes === 1 && g.messages.length === 0 && g.rest === 0 && g.ended);
  if (clean.length !== 2 * W) fail(`W=${W}: orderly closes seen: ${JSON.stringify(got)}`);
  console.log(
    `W=${W}: file flags unchanged (${flags.flat().join(', ')}); ${clean.length}/${2 * W} sockets read exactly the peer's orderly close, then its end`,
  );
  await ring.close();
}
console.log(failures === 0 ? 'handover-check: ok' : `handover-check: ${failures} failures`);
if (failures > 0) process.exit(1);
