/**
 * Data connections made by JavaScript, as src/collective makes them, for the native plane to
 * adopt (handover-check.ts, downstream-check.ts): each rank's DataListener (data-listener.ts)
 * waits for a token, and the receiver of each ring edge dials the sender's data port with a plain
 * net.connect and writes `BBNT` + the token, as TcpDataIn.connect does.
 *
 * Handing a socket to the plane (`handOver`) uses two undocumented parts of Node's net.Socket:
 * `_handle.fd`, the descriptor (Linux and macOS; it is -1 on Windows), and `_handle.readStop()`,
 * because `socket.pause()` alone does not stop libuv reading: a paused socket without `onread`
 * still reads up to its highWaterMark into JavaScript (only the `onread` kind stops reading on
 * pause), and those bytes would be lost to the plane. The documented alternative is the other
 * direction: the addon dials, accepts and greets (`BBNT` + token) itself, and JavaScript never
 * holds the sockets (or wraps a descriptor the addon made with `new net.Socket({ fd })`).
 * Taking a socket back (`takeBack`) restarts libuv's reading the same way (`_handle.readStart()`).
 * Bench only.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { DATA_MAGIC, DataListener } from '../../../src/collective/data-listener.ts';
import { nativeAddon } from './addon.ts';

export type { PlaneError } from './addon.ts';

export const rp = nativeAddon();

/** The zero-length message: an orderly close (tcp-edges.ts). */
export const BYE = Buffer.alloc(5);

/** Prefixes one message (tcp-edges.ts's framing). */
export function prefixed(message: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** Sockets of a ring of W ranks: recv[r] from rank r-1 (rank r dialed it), send[r] to rank r+1. */
export interface JsRing {
  recv: net.Socket[];
  send: net.Socket[];
  close(): Promise<void>;
}

/** Connects the ring's W data connections the way ring-connect.ts does. */
export async function connectRing(W: number): Promise<JsRing> {
  const listeners = await Promise.all(Array.from({ length: W }, () => DataListener.listen('127.0.0.1', 0)));
  const send: net.Socket[] = [];
  const recv: net.Socket[] = [];
  await Promise.all(
    listeners.map(async (listener, r) => {
      const token = randomBytes(16);
      const accepted = new Promise<net.Socket>((resolve) => listener.expect(token, resolve));
      const dialed = await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port: listener.port, noDelay: true });
        s.once('error', reject);
        s.once('connect', () => {
          s.off('error', reject);
          s.write(Buffer.concat([DATA_MAGIC, token]), () => resolve(s));
        });
      });
      dialed.pause();
      recv[(r + 1) % W] = dialed;
      send[r] = await accepted;
    }),
  );
  return {
    recv,
    send,
    async close() {
      for (const s of [...recv, ...send]) s.destroy();
      await Promise.all(listeners.map((l) => l.close()));
    },
  };
}

interface Handle {
  fd: number;
  reading: boolean;
  readStop(): number;
  readStart(): number;
}

function handleOf(socket: net.Socket): Handle {
  return (socket as unknown as { _handle: Handle })._handle;
}

/**
 * Stops JavaScript reading `socket` and returns its descriptor for the plane. The socket must
 * hold no unread bytes in JavaScript and no unsent writes. `HANDOVER_BREAK=no-readstop` leaves
 * libuv reading (the deliberate break of handover-check.ts).
 */
export function handOver(socket: net.Socket): number {
  if (socket.readableLength !== 0 || socket.writableLength !== 0) {
    throw new Error(
      `handOver: ${socket.readableLength} unread and ${socket.writableLength} unsent bytes in JavaScript`,
    );
  }
  socket.pause();
  const handle = handleOf(socket);
  if (process.env.HANDOVER_BREAK !== 'no-readstop') {
    handle.reading = false;
    const err = handle.readStop();
    if (err !== 0) throw new Error(`handOver: readStop failed (${err})`);
  }
  if (!(handle.fd >= 0)) throw new Error('handOver: no descriptor (not Linux or macOS?)');
  return handle.fd;
}

/**
 * The descriptor's file status flags (/proc/self/fdinfo, Linux), octal as the kernel prints them;
 * 'closed' when the descriptor is not open.
 */
export function fdFlags(fd: number): string {
  if (!existsSync(`/proc/self/fdinfo/${fd}`)) return 'closed';
  const m = /^flags:\s*(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  if (!m) throw new Error(`no flags for descriptor ${fd}`);
  return m[1];
}

/** Everything a socket delivers once JavaScript reads it again, split into messages. */
export interface Received {
  messages: Buffer[];
  byes: number;
  /** Bytes after the last whole message. */
  rest: number;
  ended: boolean;
  /** The socket's error, if it failed. */
  error?: string;
}

/**
 * Gives `socket` back to JavaScript after the plane is done with it: libuv reads again. The
 * stream may still count a read as pending from before the handover (so `resume()` alone would
 * not start one): the handle is restarted directly, as Node's own tryReadStart does.
 */
export function takeBack(socket: net.Socket): void {
  const handle = handleOf(socket);
  if (!handle.reading) {
    handle.reading = true;
    const err = handle.readStart();
    if (err !== 0) throw new Error(`takeBack: readStart failed (${err})`);
  }
  socket.resume();
}

/** Takes `socket` back (after the plane) and splits what arrives into prefixed messages. */
export function readMessages(socket: net.Socket): { got: Received; ended: Promise<Received> } {
  const got: Received = { messages: [], byes: 0, rest: 0, ended: false };
  socket.on('error', (err) => {
    got.error = err.message;
  });
  // Chunks are joined only once a whole message is in (a 16 MiB frame arrives in many reads).
  let parts: Buffer[] = [];
  let have = 0;
  socket.on('data', (chunk: Buffer) => {
    parts.push(chunk);
    have += chunk.length;
    for (;;) {
      if (have < 5) break;
      if (parts[0].length < 5) parts = [Buffer.concat(parts)];
      const len = parts[0].readUInt32BE(1);
      if (have < 5 + len) break;
      const buf = parts.length === 1 ? parts[0] : Buffer.concat(parts);
      if (len === 0) got.byes++;
      else got.messages.push(Buffer.from(buf.subarray(5, 5 + len)));
      const rest = buf.subarray(5 + len);
      parts = rest.length > 0 ? [rest] : [];
      have = rest.length;
    }
    got.rest = have;
  });
  const ended = new Promise<Received>((resolve) => {
    socket.once('end', () => {
      got.ended = true;
      resolve(got);
    });
    socket.once('close', () => resolve(got));
  });
  takeBack(socket);
  return { got, ended };
}
