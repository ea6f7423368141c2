/**
 * TensorBoard logs: `events.out.tfevents.<unix seconds>.<host>` in the run directory itself (so
 * `tensorboard --logdir runs` names each run by its directory), TFRecord framed `tensorflow.Event`
 * protobufs, the first carrying `file_version: "brain.Event:2"`. Scalars, plus two plugin values:
 * text (the run's config) and hparams (the run's settings, for TensorBoard's HParams table).
 *
 * The protobuf is hand-encoded: scalars need four fields of two messages (Event.wall_time /
 * step / file_version / summary, Summary.Value.tag / simple_value); plugin values add the
 * value's metadata (plugin name and content) and a string tensor. No well-kept npm package writes
 * TB events without TensorFlow (tfjs-node's `summaryFileWriter` needs the native library, which the
 * coordinator and CLI hosts need not have), and protobufjs would add a .proto and reflection for
 * what is ~30 lines of varints. The encoding is pinned by a test that reads the file back with
 * TensorBoard's own `EventAccumulator`.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { frameRecord, readRecords } from './tfrecord.ts';

// Field keys: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
const EVENT_WALL_TIME = (1 << 3) | 1;
const EVENT_STEP = (2 << 3) | 0;
const EVENT_FILE_VERSION = (3 << 3) | 2;
const EVENT_SUMMARY = (5 << 3) | 2;
const SUMMARY_VALUE = (1 << 3) | 2;
const VALUE_TAG = (1 << 3) | 2;
const VALUE_SIMPLE = (2 << 3) | 5;
const VALUE_IMAGE = (4 << 3) | 2;
const IMAGE_HEIGHT = (1 << 3) | 0;
const IMAGE_WIDTH = (2 << 3) | 0;
const IMAGE_COLORSPACE = (3 << 3) | 0;
const IMAGE_ENCODED = (4 << 3) | 2;
const VALUE_TENSOR = (8 << 3) | 2;
const VALUE_METADATA = (9 << 3) | 2;
const METADATA_PLUGIN_DATA = (1 << 3) | 2;
const PLUGIN_NAME = (1 << 3) | 2;
const PLUGIN_CONTENT = (2 << 3) | 2;
const TENSOR_DTYPE = (1 << 3) | 0;
const TENSOR_SHAPE = (2 << 3) | 2;
const TENSOR_STRING_VAL = (8 << 3) | 2;
/** tensorflow.DataType DT_STRING. */
const DT_STRING = 7;

function varint(n: bigint): number[] {
  // int64 step: negative values are 10-byte two's complement, as protobuf specifies.
  let v = BigInt.asUintN(64, n);
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

const utf8 = new TextEncoder();

function lengthDelimited(key: number, bytes: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([key, ...varint(BigInt(bytes.length))]), bytes]);
}

/** One scalar: a tag and its float32 value. */
export interface Scalar {
  readonly tag: string;
  readonly value: number;
}

/** Encodes a `tensorflow.Event`. */
export function encodeEvent(e: {
  wallTime: number;
  step: number;
  fileVersion?: string;
  scalars?: readonly Scalar[];
  plugins?: readonly PluginValue[];
}): Buffer {
  const head = Buffer.alloc(9);
  head[0] = EVENT_WALL_TIME;
  head.writeDoubleLE(e.wallTime, 1);
  const parts: Buffer[] = [head, Buffer.from([EVENT_STEP, ...varint(BigInt(Math.trunc(e.step)))])];
  if (e.fileVersion !== undefined)
    parts.push(lengthDelimited(EVENT_FILE_VERSION, utf8.encode(e.fileVersion)));
  if (e.scalars && e.scalars.length > 0) {
    const values = e.scalars.map((s) => {
      const f = Buffer.alloc(5);
      f[0] = VALUE_SIMPLE;
      f.writeFloatLE(s.value, 1);
      return lengthDelimited(
        SUMMARY_VALUE,
        Buffer.concat([lengthDelimited(VALUE_TAG, utf8.encode(s.tag)), f]),
      );
    });
    parts.push(lengthDelimited(EVENT_SUMMARY, Buffer.concat(values)));
  }
  if (e.plugins && e.plugins.length > 0) {
    parts.push(lengthDelimited(EVENT_SUMMARY, Buffer.concat(e.plugins.map(encodePluginValue))));
  }
  return Buffer.concat(parts);
}

/** A plugin's summary value: its tag, plugin name and content, and a scalar string tensor. */
export interface PluginValue {
  readonly tag: string;
  readonly plugin: string;
  /** The plugin's own metadata bytes (e.g. `HParamsPluginData`); empty for text. */
  readonly content?: Uint8Array;
  /** The tensor's one string (the text plugin shows it as markdown). */
  readonly text: string;
}

function encodePluginValue(v: PluginValue): Buffer {
  const pluginData = Buffer.concat([
    lengthDelimited(PLUGIN_NAME, utf8.encode(v.plugin)),
    ...(v.content && v.content.length > 0 ? [lengthDelimited(PLUGIN_CONTENT, v.content)] : []),
  ]);
  const metadata = lengthDelimited(METADATA_PLUGIN_DATA, pluginData);
  const tensor = Buffer.concat([
    Buffer.from([TENSOR_DTYPE, DT_STRING]),
    lengthDelimited(TENSOR_SHAPE, new Uint8Array(0)),
    lengthDelimited(TENSOR_STRING_VAL, utf8.encode(v.text)),
  ]);
  return lengthDelimited(
    SUMMARY_VALUE,
    Buffer.concat([
      lengthDelimited(VALUE_TAG, utf8.encode(v.tag)),
      lengthDelimited(VALUE_TENSOR, tensor),
      lengthDelimited(VALUE_METADATA, metadata),
    ]),
  );
}

// google.protobuf.Value and the hparams plugin's messages (tensorboard/plugins/hparams/*.proto).
const VALUE_NUMBER = (2 << 3) | 1;
const VALUE_STRING = (3 << 3) | 2;
const VALUE_BOOL = (4 << 3) | 0;
const MAP_KEY = (1 << 3) | 2;
const MAP_VALUE = (2 << 3) | 2;
const SESSION_HPARAMS = (1 << 3) | 2;
const SESSION_START_SECS = (5 << 3) | 1;
const HPARAMS_VERSION = (1 << 3) | 0;
const HPARAMS_SESSION_START = (3 << 3) | 2;

/** The tag TensorBoard's HParams plugin reads a session's settings from. */
export const HPARAMS_SESSION_START_TAG = '_hparams_/session_start_info';

/**
 * `HParamsPluginData { version: 0, session_start_info { hparams, start_time_secs } }`: the
 * settings of one run (one HParams "session"), numbers, strings and booleans.
 */
export function hparamsContent(
  hparams: Readonly<Record<string, number | string | boolean>>,
  startSeconds: number,
): Uint8Array {
  const entries = Object.entries(hparams).map(([key, v]) => {
    let value: Buffer;
    if (typeof v === 'number') {
      value = Buffer.alloc(9);
      value[0] = VALUE_NUMBER;
      value.writeDoubleLE(v, 1);
    } else if (typeof v === 'boolean') value = Buffer.from([VALUE_BOOL, v ? 1 : 0]);
    else value = lengthDelimited(VALUE_STRING, utf8.encode(v));
    return lengthDelimited(
      SESSION_HPARAMS,
      Buffer.concat([lengthDelimited(MAP_KEY, utf8.encode(key)), lengthDelimited(MAP_VALUE, value)]),
    );
  });
  const start = Buffer.alloc(9);
  start[0] = SESSION_START_SECS;
  start.writeDoubleLE(startSeconds, 1);
  const session = Buffer.concat([...entries, start]);
  return Buffer.concat([Buffer.from([HPARAMS_VERSION, 0]), lengthDelimited(HPARAMS_SESSION_START, session)]);
}

/** A decoded event (only the fields this module writes). */
export interface DecodedEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  scalars: Scalar[];
}

/** Minimal protobuf reader over the fields above; unknown fields are skipped by wire type. */
function fields(buf: Buffer, visit: (field: number, wire: number, at: number, end: number) => void): void {
  let at = 0;
  const readVarint = (): bigint => {
    let shift = 0n;
    let v = 0n;
    for (;;) {
      const b = buf[at++];
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
      shift += 7n;
    }
  };
  while (at < buf.length) {
    const key = Number(readVarint());
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) {
      const start = at;
      readVarint();
      visit(field, wire, start, at);
    } else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      visit(field, wire, at, at + n);
      at += n;
    } else if (wire === 2) {
      const n = Number(readVarint());
      visit(field, wire, at, at + n);
      at += n;
    } else {
      throw new Error(`unsupported protobuf wire type ${wire} at byte ${at}`);
    }
  }
}

/** Decodes a `tensorflow.Event` written by {@link encodeEvent}. */
export function decodeEvent(bytes: Uint8Array): DecodedEvent {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: DecodedEvent = { wallTime: 0, step: 0, scalars: [] };
  fields(buf, (field, _wire, at, end) => {
    if (field === 1) out.wallTime = buf.readDoubleLE(at);
    else if (field === 2) {
      let v = 0n;
      for (let i = at, s = 0n; i < end; i++, s += 7n) v |= BigInt(buf[i] & 0x7f) << s;
      out.step = Number(BigInt.asIntN(64, v));
    } else if (field === 3) out.fileVersion = buf.toString('utf8', at, end);
    else if (field === 5) {
      fields(buf.subarray(at, end), (vf, _w, va, ve) => {
        if (vf !== 1) return;
        const value = buf.subarray(at + va, at + ve);
        const s: { tag: string; value: number } = { tag: '', value: Number.NaN };
        fields(value, (f, _w2, a, e) => {
          if (f === 1) s.tag = value.toString('utf8', a, e);
          else if (f === 2) s.value = value.readFloatLE(a);
        });
        out.scalars.push(s);
      });
    }
  });
  return out;
}

/** Reads an event file back, verifying every record's CRCs. */
export function readEventFile(file: Uint8Array): DecodedEvent[] {
  return readRecords(file).map(decodeEvent);
}

/** Options of {@link TensorBoardWriter}. */
export interface TensorBoardWriterOptions {
  /** Wall clock in seconds (default: `Date.now() / 1000`). */
  now?: () => number;
  /** Host part of the file name (default: `os.hostname()`). */
  host?: string;
}

/**
 * Appends events to one event file. Writes are synchronous and small (one record per call: one per
 * step, a few per epoch), never fsynced per step; `flush()` (at epoch ends) fsyncs.
 */
export class TensorBoardWriter {
  /** The event file's path. */
  readonly path: string;
  private fd: number | undefined;
  private readonly now: () => number;

  /** Creates the file in `runDir` (made if missing) and writes the `brain.Event:2` header event. */
  constructor(runDir: string, opts: TensorBoardWriterOptions = {}) {
    this.now = opts.now ?? (() => Date.now() / 1000);
    const dir = runDir;
    mkdirSync(dir, { recursive: true });
    const start = this.now();
    const host = (opts.host ?? hostname()).replace(/[^A-Za-z0-9._-]/g, '_');
    this.path = join(dir, `events.out.tfevents.${Math.floor(start)}.${host}`);
    this.fd = openSync(this.path, 'a');
    this.write(encodeEvent({ wallTime: start, step: 0, fileVersion: 'brain.Event:2' }));
  }

  private write(event: Buffer): void {
    if (this.fd === undefined) throw new Error(`TensorBoardWriter: ${this.path} is closed`);
    const rec = frameRecord(event);
    let at = 0;
    while (at < rec.length) at += writeSync(this.fd, rec, at);
  }

  /** Writes the scalars of one step as one event. Non-finite values are skipped (TB would plot gaps). */
  scalars(step: number, values: readonly Scalar[]): void {
    const finite = values.filter((v) => Number.isFinite(v.value));
    if (finite.length > 0) this.write(encodeEvent({ wallTime: this.now(), step, scalars: finite }));
  }

  /** Writes a PNG image (TensorBoard's Images tab) at `step`. */
  image(step: number, tag: string, img: { png: Uint8Array; width: number; height: number }): void {
    const image = Buffer.concat([
      Buffer.from([IMAGE_HEIGHT, ...varint(BigInt(img.height))]),
      Buffer.from([IMAGE_WIDTH, ...varint(BigInt(img.width))]),
      Buffer.from([IMAGE_COLORSPACE, 3]), // RGB
      lengthDelimited(IMAGE_ENCODED, img.png),
    ]);
    const value = lengthDelimited(
      SUMMARY_VALUE,
      Buffer.concat([lengthDelimited(VALUE_TAG, utf8.encode(tag)), lengthDelimited(VALUE_IMAGE, image)]),
    );
    const head = Buffer.alloc(9);
    head[0] = EVENT_WALL_TIME;
    head.writeDoubleLE(this.now(), 1);
    this.write(
      Buffer.concat([
        head,
        Buffer.from([EVENT_STEP, ...varint(BigInt(Math.trunc(step)))]),
        lengthDelimited(EVENT_SUMMARY, value),
      ]),
    );
  }

  /** Writes plugin values (text, hparams) as one event at `step`. */
  plugins(step: number, values: readonly PluginValue[]): void {
    if (values.length > 0) this.write(encodeEvent({ wallTime: this.now(), step, plugins: values }));
  }

  /** fsyncs the file. */
  flush(): void {
    if (this.fd !== undefined) fsyncSync(this.fd);
  }

  /** Flushes and closes; idempotent. */
  close(): void {
    if (this.fd === undefined) return;
    try {
      fsyncSync(this.fd);
    } finally {
      closeSync(this.fd);
      this.fd = undefined;
    }
  }
}

/** The fields of one metrics.jsonl row this module plots (structurally `EpochMetrics`). */
export interface EpochScalarsInput {
  readonly trainLoss: number;
  readonly trainAccuracy: number;
  readonly testTop1: number;
  readonly many: number | null;
  readonly medium: number | null;
  readonly few: number | null;
  readonly alpha: number | null;
  readonly lr: number;
}

/** The TensorBoard tags of one epoch's row; accuracies stay fractions in [0, 1]. */
export function epochScalars(row: EpochScalarsInput): Scalar[] {
  const out: Scalar[] = [
    { tag: 'loss/train', value: row.trainLoss },
    { tag: 'accuracy/train', value: row.trainAccuracy },
    { tag: 'accuracy/test_top1', value: row.testTop1 },
    { tag: 'schedule/lr', value: row.lr },
  ];
  if (row.many !== null) out.push({ tag: 'accuracy/many', value: row.many });
  if (row.medium !== null) out.push({ tag: 'accuracy/medium', value: row.medium });
  if (row.few !== null) out.push({ tag: 'accuracy/few', value: row.few });
  if (row.alpha !== null) out.push({ tag: 'schedule/alpha', value: row.alpha });
  return out;
}
