/**
 * The data port of a peer server (`transport: 'tcp'`): one TCP listener per CollectiveServer that
 * hands each incoming data connection to the ring edge its token names. The token travels in the
 * RingAccept of that edge's gRPC call, so only the neighbour that passed the hello/accept checks
 * can open the edge's data connection; anything else is dropped, and nothing a client sends can
 * throw out of the listener.
 */
import net from 'node:net';
import { CollectiveConfigError } from './api.ts';

/** First bytes the receiver writes on a data connection, before the edge's token. */
export const DATA_MAGIC = Buffer.from('BBNT', 'latin1');
/** Token bytes naming an edge on the data port. */
export const DATA_TOKEN_BYTES = 16;
/** Time a data connection has to name its edge. */
const GREETING_TIMEOUT_MS = 10_000;
const GREETING_BYTES = DATA_MAGIC.length + DATA_TOKEN_BYTES;

/** A TCP listener routing data connections by token. */
export class DataListener {
  private readonly expected = new Map<string, (socket: net.Socket) => void>();
  /** Every connection not yet closed (destroyed on `close()`, as the server's calls are). */
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    /** Bound port. */
    readonly port: number,
  ) {}

  /** Listens on host:port (0 picks a free port). */
  static async listen(host: string, port: number): Promise<DataListener> {
    const server = net.createServer({ noDelay: true });
    const bound = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host.replace(/^\[|\]$/g, ''), () => {
        server.off('error', reject);
        resolve((server.address() as net.AddressInfo).port);
      });
    }).catch((err: unknown) => {
      server.close();
      throw new CollectiveConfigError(
        `CollectiveServer: cannot bind the data port on ${host}:${port}: ${(err as Error).message}`,
        { cause: err },
      );
    });
    const self = new DataListener(server, bound);
    server.on('connection', (socket) => self.greet(socket));
    server.on('error', () => {});
    return self;
  }

  /**
   * Waits for the data connection named by `token`; `take` receives its socket (greeting
   * consumed, reading paused). Returns the function that stops waiting.
   */
  expect(token: Uint8Array, take: (socket: net.Socket) => void): () => void {
    const key = Buffer.from(token).toString('hex');
    this.expected.set(key, take);
    return () => {
      if (this.expected.get(key) === take) this.expected.delete(key);
    };
  }

  /** Stops listening and drops every data connection. */
  async close(): Promise<void> {
    this.expected.clear();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private greet(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), GREETING_TIMEOUT_MS);
    const done = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
    };
    socket.once('close', done);
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      if (got.length < GREETING_BYTES) return;
      done();
      socket.pause();
      const magic = got.subarray(0, DATA_MAGIC.length);
      const key = got.subarray(DATA_MAGIC.length, GREETING_BYTES).toString('hex');
      const take = this.expected.get(key);
      if (!magic.equals(DATA_MAGIC) || !take) {
        socket.destroy();
        return;
      }
      this.expected.delete(key);
      if (got.length > GREETING_BYTES) socket.unshift(got.subarray(GREETING_BYTES));
      take(socket);
    };
    socket.on('data', onData);
  }
}
