/**
 * Self-check of the native chunk wire (native/ring-plane/wire.c, through the ring_plane addon's
 * test entry points in wire_napi.c): the C encoder must
 * write byte for byte what src/collective/frame-codec.ts + tcp-edges.ts write (and what the
 * generated bbn.v1.RingResponse.encode writes for the same chunk), and the C classifier must call
 * a message 'match' exactly when frame-codec.ts's decodeResponse yields a chunk whose every field
 * equals the expected one (the ring's checks in allreduce-op.ts), over canonical, re-ordered,
 * foreign, truncated, mutated and random messages. Seeded; prints the count of cases per part.
 * Bench only: `node --import tsx bench/peers/native/wire-check.ts` after scripts/setup-native.sh; exit 1 on any
 * mismatch. wire-check-asan.sh runs it against a build with AddressSanitizer and UBSan.
 */
import {
  type ChunkHeader,
  decodeResponse,
  planChunkFrame,
  UINT_FIELDS,
  writeChunkHeader,
} from '../../../src/collective/frame-codec.ts';
import { PREFIX_BYTES } from '../../../src/collective/tcp-edges.ts';
import { Rng } from '../../../src/core/rng.ts';
import { bbn } from '../../../src/generated/bbn.js';
import { wireAddon } from './addon.ts';

const wire = wireAddon();

const ENUMS = new Set<string>(['phase', 'dtype']);

let failures = 0;
const counts = new Map<string, number>();
const failed = new Map<string, number>();
function check(part: string, ok: boolean, what: () => string): void {
  counts.set(part, (counts.get(part) ?? 0) + 1);
  if (ok) return;
  failures++;
  failed.set(part, (failed.get(part) ?? 0) + 1);
  if (failures <= 15) console.error(`MISMATCH [${part}] ${what()}`);
}

const rng = Rng.fromSeed('native-wire-check');

function randomRunId(): string {
  const ids = ['', 'r', 'run-ü-✓', '训练-🚀-ä', 'é'.repeat(70), 'x'.repeat(rng.int(300))];
  return rng.int(50) === 0 ? 'y'.repeat(16384 + rng.int(100)) : ids[rng.int(ids.length)];
}

function randomUint(): number {
  const edges = [
    0,
    1,
    127,
    128,
    16383,
    16384,
    2 ** 21 - 1,
    2 ** 21,
    2 ** 28 - 1,
    2 ** 28,
    2 ** 31,
    0xffffffff,
  ];
  const r = rng.int(5);
  if (r === 0) return edges[rng.int(edges.length)];
  if (r === 1) return rng.int(128);
  if (r === 2) return rng.int(1 << 20);
  if (r === 3) return 0xffffffff - rng.int(1000);
  return rng.int(0x100000000);
}

function randomHeader(): ChunkHeader {
  const h: Record<string, number | string> = { runId: randomRunId() };
  for (const f of UINT_FIELDS) h[f] = randomUint();
  // Enums are int32 on the wire: only values below 2^31 encode the same as uint32.
  for (const f of ENUMS) h[f] = rng.int(2) === 0 ? rng.int(4) : rng.int(0x80000000);
  return h as unknown as ChunkHeader;
}

/** Prefix + header as tcp-edges.ts's TcpDataOut.send writes them; throws where it would. */
function jsHeader(h: ChunkHeader, payloadBytes: number): Buffer {
  const plan = planChunkFrame(h, payloadBytes);
  const out = Buffer.alloc(PREFIX_BYTES + plan.headerBytes);
  out[0] = 0;
  out.writeUInt32BE(plan.total, 1);
  writeChunkHeader(h, plan, out, PREFIX_BYTES);
  return out;
}

function attempt<T>(f: () => T): T | Error {
  try {
    return f();
  } catch (err) {
    return err as Error;
  }
}

function randomBytes(n: number): Buffer {
  return Buffer.from(Uint8Array.from({ length: n }, () => rng.int(256)));
}

/** The reference verdict: what the JavaScript ring makes of `msg` when it expects chunk `h`. */
function jsVerdict(msg: Buffer, h: ChunkHeader, payloadBytes: number): number {
  const r = attempt(() => decodeResponse(msg));
  if (r instanceof Error || r.kind !== 'chunk') return -1;
  const c = r.chunk;
  if (c.runId !== h.runId || c.payload.length !== payloadBytes) return -1;
  for (const f of UINT_FIELDS) if (c[f] !== h[f]) return -1;
  return c.payload.byteOffset - msg.byteOffset;
}

/** C and JS agree on `msg`; returns the verdict ('match' or 'other'). */
function agree(part: string, bytes: Buffer, h: ChunkHeader, payloadBytes: number, want?: string): string {
  // A copy in its own allocation of exactly its size (not a view of a pool or of a longer
  // message), so that a sanitizer build catches any read past its end.
  const msg = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(msg);
  const verdict = wire.classify(msg, h, payloadBytes);
  const at = wire.payloadAt(msg, h, payloadBytes);
  const js = jsVerdict(msg, h, payloadBytes);
  const show = () =>
    `${msg.length} bytes ${msg.subarray(0, 48).toString('hex')}: C ${verdict}@${at}, JS ${js}`;
  check(
    part,
    (verdict === 'match') === js >= 0 && at === js && (want === undefined || verdict === want),
    show,
  );
  return verdict;
}

// ---- 1. encoder: byte-identical to frame-codec.ts (prefix from tcp-edges.ts) ----
for (let i = 0; i < 20000; i++) {
  const h = randomHeader();
  const kind = rng.int(4);
  const payloadBytes =
    kind === 0
      ? 1 + rng.int(300)
      : kind === 1
        ? 4 * (1 + rng.int(1 << 20))
        : kind === 2
          ? 0xffffffff - 100 - (h.runId.length + rng.int(200))
          : 1 + rng.int(0xffffffff);
  const js = attempt(() => jsHeader(h, payloadBytes));
  const c = attempt(() => wire.encodeChunkHeader(h, payloadBytes));
  if (js instanceof Error || c instanceof Error) {
    // Only a message past the prefix's 2^32 - 1 bytes may fail, and then on both sides.
    check(
      'encoder refuses > 2^32-1',
      js instanceof RangeError && c instanceof RangeError,
      () => `${js} / ${c}`,
    );
    continue;
  }
  check(
    'encoder == frame-codec.ts',
    c.equals(js),
    () => `${JSON.stringify(h)} ${payloadBytes} B: C ${c.toString('hex')} JS ${js.toString('hex')}`,
  );
  check('payload 4-byte aligned', c.length % 4 === 0, () => `${c.length}`);
  check('prefix() reads the length', wire.prefix(c.subarray(0, 5)) === c.readUInt32BE(1), () =>
    c.toString('hex'),
  );
}
check(
  'prefix() bye and flag',
  wire.prefix(Buffer.alloc(5)) === 0 && wire.prefix(Buffer.from([1, 0, 0, 0, 9])) === -1,
  () => 'prefix',
);
{
  const h = randomHeader();
  check(
    'f32 default: 4 * length bytes',
    wire.encodeChunkHeader({ ...h, length: 77 }).equals(jsHeader({ ...h, length: 77 }, 308)),
    () => 'default',
  );
  check(
    'encoder refuses 0 payload bytes',
    attempt(() => wire.encodeChunkHeader(h, 0)) instanceof RangeError,
    () => '0',
  );
}

// ---- 2. encoder: byte-identical to the generated bbn.v1.RingResponse.encode ----
const padsSeen = new Map<number, number>(); // padding bytes -> cases
for (let i = 0; i < 3000; i++) {
  const h = randomHeader();
  const payload = randomBytes(1 + rng.int(300));
  const head = wire.encodeChunkHeader(h, payload.length);
  const frame = Buffer.concat([head, payload]);
  const message = frame.subarray(PREFIX_BYTES);
  const chunk = bbn.v1.RingResponse.decode(message).chunk!;
  const padding = chunk.alignmentPadding ?? new Uint8Array(0);
  const gen = (pad: number) =>
    Buffer.from(
      bbn.v1.RingResponse.encode({
        chunk: { ...h, alignmentPadding: new Uint8Array(pad), payload },
      }).finish(),
    );
  check('encoder == generated encode', gen(padding.length).equals(message), () => JSON.stringify(h));
  check('padding: <= 8 zero bytes', padding.length <= 8 && padding.every((b) => b === 0), () => `${padding}`);
  for (let k = 0; k < padding.length; k++) {
    const aligned = (PREFIX_BYTES + gen(k).length - payload.length) % 4 === 0;
    check('padding is the smallest that aligns', !aligned, () => `${k} < ${padding.length} aligns too`);
  }
  check('prefix length == message length', head.readUInt32BE(1) === message.length, () => JSON.stringify(h));
  padsSeen.set(padding.length, (padsSeen.get(padding.length) ?? 0) + 1);
}
// Every alignment case came up: each of the four header sizes mod 4 needs its own padding.
check(
  'paddings 0, 1, 3 and 4 bytes all came up',
  [0, 1, 3, 4].every((k) => padsSeen.has(k)),
  () => JSON.stringify([...padsSeen]),
);
console.log(`padding bytes -> cases: ${JSON.stringify([...padsSeen].sort((a, b) => a[0] - b[0]))}`);

// ---- 3. classifier on hand-built encodings ----
/** A varint of v (a bigint may carry bits past 32), with `extra` redundant continuation bytes. */
function varint(v: number | bigint, extra = 0): number[] {
  let x = BigInt(v);
  const out: number[] = [];
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  if (extra === 0) return [...out, Number(x)];
  out.push(Number(x) | 0x80);
  for (let k = 1; k < extra; k++) out.push(0x80);
  return [...out, 0];
}
const tag = (field: number, wt: number) => varint(field * 8 + wt);
const lenField = (field: number, bytes: Uint8Array | number[]) => [
  ...tag(field, 2),
  ...varint(bytes.length),
  ...bytes,
];
const strBytes = (s: string) => [...Buffer.from(s, 'utf8')];

function unknownField(): number[] {
  const field = 17 + rng.int(1000);
  const wt = [0, 1, 2, 5][rng.int(4)];
  if (wt === 0) return [...tag(field, 0), ...varint(BigInt(rng.int(0x100000000)) << BigInt(rng.int(30)))];
  if (wt === 1) return [...tag(field, 1), ...randomBytes(8)];
  if (wt === 5) return [...tag(field, 5), ...randomBytes(4)];
  return lenField(field, randomBytes(rng.int(20)));
}

/** The chunk's fields in a random order, with unknown, repeated and oddly encoded fields. */
function reordered(h: ChunkHeader, payload: Buffer): Buffer {
  const parts: number[][] = [];
  const runId = (rng.int(8) === 0 ? '\ufeff' : '') + h.runId; // TextDecoder drops one leading BOM
  if (h.runId.length > 0 || runId.length > 0 || rng.int(2) === 0) parts.push(lenField(1, strBytes(runId)));
  const written: number[] = [];
  UINT_FIELDS.forEach((f, i) => {
    const v = h[f];
    const how = rng.int(4);
    const enc =
      how === 0
        ? varint(v, 1 + rng.int(4))
        : how === 1 && !ENUMS.has(f)
          ? varint(BigInt(v) + (1n << 32n))
          : varint(v);
    if (v === 0 && rng.int(2) === 0) return; // zero: omitted or written
    parts.push([...tag(i + 2, 0), ...enc]);
    written.push(i + 2);
  });
  parts.push(lenField(15, randomBytes(rng.int(12))));
  parts.push(lenField(16, payload));
  for (let k = rng.int(4); k > 0; k--) parts.push(unknownField());
  const order = rng.permutation(parts.length);
  const inner: number[] = [];
  // An earlier, wrong value of a field that is written again later (the last one wins).
  if (written.length > 0 && rng.int(2) === 0)
    inner.push(...tag(written[rng.int(written.length)], 0), ...varint(rng.int(1000)));
  if (rng.int(2) === 0) inner.push(...lenField(16, randomBytes(rng.int(9))));
  for (const k of order) inner.push(...parts[k]);
  const outer: number[] = [];
  if (rng.int(2) === 0) outer.push(...unknownField());
  outer.push(...lenField(2, inner));
  if (rng.int(2) === 0) outer.push(...unknownField());
  return Buffer.from(outer);
}

const canonical = (h: ChunkHeader, payload: Buffer) =>
  Buffer.concat([wire.encodeChunkHeader(h, payload.length), payload]).subarray(PREFIX_BYTES);

for (let i = 0; i < 4000; i++) {
  const h = randomHeader();
  const payload = randomBytes(1 + rng.int(64));
  const msg = canonical(h, payload);
  agree('classify canonical: match', msg, h, payload.length, 'match');
  check(
    'canonical payloadAt',
    wire.payloadAt(msg, h, payload.length) === wire.encodeChunkHeader(h, payload.length).length - 5,
    () => 'at',
  );
  agree('classify re-ordered: match', reordered(h, payload), h, payload.length, 'match');
  const f = UINT_FIELDS[rng.int(UINT_FIELDS.length)];
  const other = { ...h, [f]: ENUMS.has(f) ? (h[f] + 1) % 4 : (h[f] + 1 + rng.int(1000)) % 0x100000000 };
  agree(
    `classify another chunk (one field differs): other`,
    canonical(other, payload),
    h,
    payload.length,
    'other',
  );
  for (const g of ['sequence', 'step', 'offset'] as const) {
    agree(
      `classify another ${g}: other`,
      canonical({ ...h, [g]: (h[g] + 1) % 0x100000000 }, payload),
      h,
      payload.length,
      'other',
    );
  }
  agree(
    'classify another run id: other',
    canonical({ ...h, runId: `${h.runId}x` }, payload),
    h,
    payload.length,
    'other',
  );
  agree(
    'classify payload of another size: other',
    canonical(h, randomBytes(payload.length + 1)),
    h,
    payload.length,
    'other',
  );
  const abort = Buffer.from(
    bbn.v1.RingResponse.encode({
      abort: {
        runId: h.runId,
        generation: h.generation,
        originRank: rng.int(8),
        reason: 1 + rng.int(4),
        message: 'boom',
        sequence: h.sequence,
      },
    }).finish(),
  );
  agree('classify abort: other', abort, h, payload.length, 'other');
  agree(
    'classify accept: other',
    Buffer.from(bbn.v1.RingResponse.encode({ accept: { runId: h.runId, rank: 1 } }).finish()),
    h,
    payload.length,
    'other',
  );
  agree('classify chunk + abort: other', Buffer.concat([msg, abort]), h, payload.length, 'other');
  agree('classify two chunks: other', Buffer.concat([msg, msg]), h, payload.length, 'other');
}
{
  const h = { ...randomHeader(), runId: 'run-ü' };
  const payload = randomBytes(8);
  // The canonical chunk's fields minus its (empty) run id, behind hand-written run id fields.
  const plain = [...canonical({ ...h, runId: '' }, payload)];
  const rest = plain.slice(1 + varint(plain.length - 2).length);
  const withIds = (...ids: number[][]) =>
    Buffer.from(lenField(2, [...ids.flatMap((id) => lenField(1, id)), ...rest]));
  agree('run id: plain', withIds(strBytes('run-ü')), h, 8, 'match');
  agree('run id: leading BOM dropped', withIds([0xef, 0xbb, 0xbf, ...strBytes('run-ü')]), h, 8, 'match');
  agree(
    'run id: two BOMs',
    withIds([0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf, ...strBytes('run-ü')]),
    h,
    8,
    'other',
  );
  for (const bad of [
    [0xc3],
    [0xc0, 0xbc],
    [0xed, 0xa0, 0x80],
    [0xf4, 0x90, 0x80, 0x80],
    [0xe0, 0x80, 0x80],
    [0xff],
  ]) {
    agree(
      'run id: invalid UTF-8 before the right one',
      withIds([...strBytes('run-'), ...bad], strBytes('run-ü')),
      h,
      8,
      'other',
    );
  }
  agree('empty message: other', Buffer.alloc(0), h, 8, 'other');
  // Edge encodings, each right after the canonical chunk fields (`rest`), or around the chunk.
  const edge = (part: string, inner: number[], want: string, outerTail: number[] = []) =>
    agree(
      `edge: ${part}`,
      Buffer.from([...lenField(2, [...lenField(1, strBytes('run-ü')), ...rest, ...inner]), ...outerTail]),
      h,
      8,
      want,
    );
  edge(
    '10-byte varint field',
    [...tag(2, 0), ...varint(h.generation, 10 - varint(h.generation).length)],
    'match',
  );
  edge('11-byte varint', [...tag(2, 0), ...varint(h.generation, 11 - varint(h.generation).length)], 'other');
  edge('bytes field claiming 2^32-1 bytes', [...tag(99, 2), ...varint(0xffffffff), 1, 2, 3], 'other');
  edge('bytes field one byte too long', [...tag(99, 2), ...varint(4), 1, 2, 3], 'other');
  edge('truncated fixed64', [...tag(99, 1), 1, 2, 3], 'other');
  edge('truncated fixed32', [...tag(99, 5), 1, 2, 3], 'other');
  edge('start group (wire type 3)', [...tag(99, 3)], 'other');
  edge('end group (wire type 4)', [...tag(99, 4)], 'other');
  edge('wire type 6', [...tag(99, 6)], 'other');
  edge('field number 0', [...tag(0, 0), 1], 'other');
  edge('known field, wrong wire type', [...tag(5, 2), 0], 'other');
  edge('payload as a varint', [...tag(16, 0), 8], 'other');
  edge('padding as a varint', [...tag(15, 0), 0], 'other');
  edge('run id as a varint', [...tag(1, 0), 0], 'other');
  edge('field number 2^29-1 skipped', [...tag(2 ** 29 - 1, 0), 7], 'match');
  edge('outer field number 0', [], 'other', [0, 0]);
  edge('outer accept after the chunk', [], 'other', lenField(1, []));
  edge('outer chunk as a varint', [], 'other', [...tag(2, 0), 1]);
  edge('outer unknown fixed64', [], 'match', [...tag(7, 1), 1, 2, 3, 4, 5, 6, 7, 8]);
}

// ---- 4. truncations, mutations and garbage: C and JS agree, nothing crashes ----
for (let i = 0; i < 200; i++) {
  const h = randomHeader();
  const payload = randomBytes(1 + rng.int(40));
  const msg = canonical(h, payload);
  for (let len = 0; len < msg.length; len++)
    agree('truncated canonical: other', msg.subarray(0, len), h, payload.length, 'other');
  // A re-ordered message cut at the boundary of a trailing unknown field is still the chunk.
  const odd = reordered(h, payload);
  for (let len = 0; len < odd.length; len++)
    agree('truncated re-ordered: C == JS', odd.subarray(0, len), h, payload.length);
}
let mutatedMatches = 0;
for (let i = 0; i < 20000; i++) {
  const h = randomHeader();
  const payload = randomBytes(1 + rng.int(40));
  const bytes = [...(rng.int(2) === 0 ? canonical(h, payload) : reordered(h, payload))];
  for (let k = 1 + rng.int(3); k > 0; k--) {
    const at = rng.int(bytes.length + 1);
    const op = rng.int(3);
    if (op === 0 && at < bytes.length) bytes[at] = rng.int(256);
    else if (op === 1) bytes.splice(at, 0, rng.int(256));
    else bytes.splice(at, 1);
  }
  if (agree('mutated: C == JS', Buffer.from(bytes), h, payload.length) === 'match') mutatedMatches++;
}
for (let i = 0; i < 5000; i++) {
  const h = randomHeader();
  agree('random bytes: other', randomBytes(rng.int(97)), h, 1 + rng.int(64), 'other');
}

for (const [part, n] of counts) {
  const bad = failed.get(part);
  console.log(`${String(n).padStart(7)}  ${part}${bad ? `  (${bad} FAIL)` : ''}`);
}
console.log(`(mutated messages still matching in both C and JS: ${mutatedMatches})`);
const total = [...counts.values()].reduce((a, b) => a + b, 0);
console.log(
  failures === 0 ? `wire-check: all ${total} checks pass` : `wire-check: ${failures} of ${total} checks FAIL`,
);
if (failures > 0) process.exit(1);
