// Timeline events → WebSocket clients, with a small JSON protocol (docs/sinks.md):
//   server → client  {"op":"hello","protocol":1,"schemaVersion":"1.0.0","ring":{"size":M,"held":n}}
//   client → server  {"op":"subscribe","streams":[..]?,"tracks":[..]?,"types":[..]?,"since":"<event id>"?}
//   server → client  {"op":"subscribed","replayed":n,"resumed":true|false|null}
//   server → client  {"op":"event","event":{...}}
//   server → client  {"op":"dropped","count":n,"total":t}   (this client was too slow; n events skipped)
//   server → client  {"op":"error","error":"..."}
// A client may instead subscribe in the URL: ?streams=a,b&tracks=t1&types=face.segment&since=<id> (or ?all).
//
// Bounds: each client has a queue of at most `clientQueue` events; events go from it into the socket only
// while the socket's bufferedAmount is under `maxBufferedBytes`, so a client that stops reading costs at most
// clientQueue events + maxBufferedBytes. When its queue is full the oldest queued event is dropped (counted per
// client, announced with an "op":"dropped" notice). The last `ringSize` events are kept so a client that
// reconnects with `since` gets what it missed, without gaps while the ring still holds that id.
// Ping every `pingIntervalMs`; a client that has not answered the previous ping is terminated.
// Binds 127.0.0.1 unless told otherwise. Optional shared token: `?token=` or `Authorization: Bearer`.
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import { ConfigError, SinkError, errorLine } from '../errors.js';
import { createLogger } from '../log.js';
import type { SinkLog } from './sink-log.js';
import { EVENT_SCHEMA_VERSION, type Sink, type SinkStats, type TimelineEvent, type TimelineEventType } from '../types.js';

export const WS_PROTOCOL_VERSION = 1;
const EVENT_TYPES: readonly TimelineEventType[] = [
  'stream.start', 'stream.online', 'stream.offline', 'track.start', 'face.observation', 'face.segment', 'track.end', 'stream.end',
];

export interface WsSinkOptions {
  /** standalone: listen on host:port (port 0 picks a free one; see address()). */
  port?: number;
  host?: string;
  /** attached: handle upgrades on `path` of an existing HTTP server (its owner listens and closes it). */
  server?: Server;
  /** upgrade path when attached (default /ws); standalone accepts any path. */
  path?: string;
  token?: string;
  /** per-client queue bound, events. */
  clientQueue?: number;
  /** stop writing into a client's socket above this many unsent bytes. */
  maxBufferedBytes?: number;
  /** events kept for `since` resumes. */
  ringSize?: number;
  pingIntervalMs?: number;
  /** how long flush()/close() wait for clients to take their queues. */
  flushTimeoutMs?: number;
  /** pino or anything with info/warn(obj, msg); default: pino JSON lines on stderr. */
  log?: SinkLog;
}

export interface WsClientStats {
  id: number;
  queued: number;
  /** highest queue length seen; never above clientQueue. */
  maxQueued: number;
  sent: number;
  dropped: number;
  bufferedAmount: number;
  subscribed: boolean;
}

export interface WsSinkStats extends SinkStats {
  clients: number;
  ringHeld: number;
}

export interface WsSink extends Sink {
  stats(): WsSinkStats;
  clients(): WsClientStats[];
  /** standalone mode: where it listens. */
  address(): AddressInfo | undefined;
}

interface Filter {
  streams?: Set<string>;
  /** "t3" (any stream) or "cam1/t3". */
  tracks?: Set<string>;
  types?: Set<string>;
}

interface Client {
  id: number;
  ws: WebSocket;
  alive: boolean;
  subscribed: boolean;
  filter: Filter;
  /** events from the ring still to send after a `since` resume (references, serialised on the way out). */
  replay: TimelineEvent[];
  queue: string[];
  maxQueued: number;
  sent: number;
  dropped: number;
  droppedUnannounced: number;
  pumping: boolean;
}

function matches(f: Filter, e: TimelineEvent): boolean {
  if (f.streams && !f.streams.has(e.streamId)) return false;
  if (f.types && !f.types.has(e.type)) return false;
  if (f.tracks) {
    if (!('trackId' in e)) return false;
    if (!f.tracks.has(e.trackId) && !f.tracks.has(`${e.streamId}/${e.trackId}`)) return false;
  }
  return true;
}

function stringList(v: unknown, what: string): Set<string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x.length > 0)) throw new Error(`${what} must be an array of strings`);
  return v.length === 0 ? undefined : new Set(v as string[]);
}

/** Parses a subscribe message (or the URL form); throws a one-line Error for the client on bad input. */
export function parseSubscribe(msg: Record<string, unknown>): { filter: Filter; since?: string } {
  const filter: Filter = {};
  const streams = stringList(msg['streams'], 'streams');
  const tracks = stringList(msg['tracks'], 'tracks');
  const types = stringList(msg['types'], 'types');
  if (types) for (const t of types) if (!(EVENT_TYPES as readonly string[]).includes(t)) throw new Error(`unknown event type ${JSON.stringify(t)}`);
  if (streams) filter.streams = streams;
  if (tracks) filter.tracks = tracks;
  if (types) filter.types = types;
  const since = msg['since'];
  if (since !== undefined && (typeof since !== 'string' || since === '')) throw new Error('since must be an event id');
  return since === undefined ? { filter } : { filter, since };
}

function subscribeFromUrl(url: URL): Record<string, unknown> | undefined {
  const q = url.searchParams;
  if (!['streams', 'tracks', 'types', 'since', 'all'].some((k) => q.has(k))) return undefined;
  const list = (k: string): string[] | undefined => (q.has(k) ? q.get(k)!.split(',').filter((s) => s !== '') : undefined);
  return { streams: list('streams'), tracks: list('tracks'), types: list('types'), since: q.get('since') ?? undefined };
}

function tokenOk(expected: string, req: IncomingMessage, url: URL): boolean {
  const auth = req.headers.authorization;
  const given = url.searchParams.get('token') ?? (auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined);
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function reject(socket: Duplex, status: number, reason: string): void {
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/** A fixed-size ring of the newest events, with lookup by id for `since`. */
class Ring {
  readonly #size: number;
  #items: TimelineEvent[] = [];
  #start = 0;
  constructor(size: number) {
    this.#size = size;
  }
  push(e: TimelineEvent): void {
    if (this.#size === 0) return;
    if (this.#items.length < this.#size) this.#items.push(e);
    else {
      this.#items[this.#start] = e;
      this.#start = (this.#start + 1) % this.#size;
    }
  }
  get length(): number {
    return this.#items.length;
  }
  /** events after `id` in order, or undefined if the ring no longer (or never) held it. */
  after(id: string): TimelineEvent[] | undefined {
    const n = this.#items.length;
    for (let i = n - 1; i >= 0; i--) {
      const e = this.#items[(this.#start + i) % n]!;
      if (e.id === id) {
        const out: TimelineEvent[] = [];
        for (let j = i + 1; j < n; j++) out.push(this.#items[(this.#start + j) % n]!);
        return out;
      }
    }
    return undefined;
  }
}

export async function createWsSink(options: WsSinkOptions): Promise<WsSink> {
  const o = {
    host: options.host ?? '127.0.0.1',
    path: options.path ?? '/ws',
    clientQueue: options.clientQueue ?? 1000,
    maxBufferedBytes: options.maxBufferedBytes ?? 256 * 1024,
    ringSize: options.ringSize ?? 10_000,
    pingIntervalMs: options.pingIntervalMs ?? 15_000,
    flushTimeoutMs: options.flushTimeoutMs ?? 5_000,
  };
  if ((options.server === undefined) === (options.port === undefined)) throw new ConfigError('ws', 'give exactly one of port (standalone) or server (attached)');
  if (options.port !== undefined && !(Number.isInteger(options.port) && options.port >= 0 && options.port <= 65535)) throw new ConfigError('ws.port', `not a port: ${options.port}`);
  if (!(Number.isInteger(o.clientQueue) && o.clientQueue >= 1)) throw new ConfigError('ws.clientQueue', 'must be an integer >= 1');
  if (!(Number.isInteger(o.ringSize) && o.ringSize >= 0)) throw new ConfigError('ws.ringSize', 'must be an integer >= 0');
  if (!(o.maxBufferedBytes >= 1024)) throw new ConfigError('ws.maxBufferedBytes', 'must be >= 1024');
  if (!(o.pingIntervalMs >= 10)) throw new ConfigError('ws.pingIntervalMs', 'must be >= 10');
  if (!o.path.startsWith('/')) throw new ConfigError('ws.path', 'must start with /');
  if (options.token !== undefined && options.token.length === 0) throw new ConfigError('ws.token', 'must not be empty');
  const log = options.log ?? createLogger('cafe-stream');
  const standalone = options.server === undefined;

  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024, clientTracking: false });
  const clients = new Set<Client>();
  const ring = new Ring(o.ringSize);
  let nextId = 1;
  let closed = false;
  const total = { sent: 0, dropped: 0 };
  const drainWaiters: (() => void)[] = [];

  const allDrained = (): boolean => [...clients].every((c) => c.queue.length === 0 && c.replay.length === 0 && c.ws.bufferedAmount === 0);
  const checkDrained = (): void => {
    if (drainWaiters.length > 0 && allDrained()) for (const f of drainWaiters.splice(0)) f();
  };

  const sendControl = (c: Client, msg: object): void => {
    if (c.ws.readyState === WebSocket.OPEN) c.ws.send(JSON.stringify(msg));
  };

  // Moves events from the replay list and the queue into the socket while it keeps up.
  const pump = (c: Client): void => {
    if (c.pumping) return;
    c.pumping = true;
    try {
      while (c.ws.readyState === WebSocket.OPEN && c.ws.bufferedAmount < o.maxBufferedBytes) {
        let data: string | undefined;
        if (c.replay.length > 0) data = eventMessage(c.replay.shift()!);
        else {
          if (c.droppedUnannounced > 0) {
            sendControl(c, { op: 'dropped', count: c.droppedUnannounced, total: c.dropped });
            c.droppedUnannounced = 0;
          }
          data = c.queue.shift();
        }
        if (data === undefined) break;
        c.sent++;
        total.sent++;
        // the callback fires once the bytes left our buffer: room for more
        c.ws.send(data, () => setImmediate(() => pump(c)));
      }
    } finally {
      c.pumping = false;
    }
    checkDrained();
  };

  const eventMessage = (e: TimelineEvent): string => `{"op":"event","event":${JSON.stringify(e)}}`;

  const enqueue = (c: Client, data: string): void => {
    if (c.queue.length >= o.clientQueue) {
      c.queue.shift();
      c.dropped++;
      c.droppedUnannounced++;
      total.dropped++;
      if (c.dropped === 1) log.warn({ client: c.id, clientQueue: o.clientQueue }, 'ws: client too slow, dropping its oldest queued events');
    }
    c.queue.push(data);
    if (c.queue.length > c.maxQueued) c.maxQueued = c.queue.length;
  };

  const subscribe = (c: Client, msg: Record<string, unknown>): void => {
    let parsed: ReturnType<typeof parseSubscribe>;
    try {
      parsed = parseSubscribe(msg);
    } catch (err) {
      sendControl(c, { op: 'error', error: errorLine(err) });
      return;
    }
    c.filter = parsed.filter;
    c.subscribed = true;
    let resumed: boolean | null = null;
    if (parsed.since !== undefined) {
      const missed = ring.after(parsed.since);
      resumed = missed !== undefined;
      c.replay = (missed ?? []).filter((e) => matches(c.filter, e));
      // anything queued before this subscribe came from the old filter; the replay covers it
      c.queue = [];
    }
    sendControl(c, { op: 'subscribed', replayed: c.replay.length, resumed });
    pump(c);
  };

  const onConnection = (ws: WebSocket, req: IncomingMessage, url: URL): void => {
    const c: Client = { id: nextId++, ws, alive: true, subscribed: false, filter: {}, replay: [], queue: [], maxQueued: 0, sent: 0, dropped: 0, droppedUnannounced: 0, pumping: false };
    clients.add(c);
    log.info({ client: c.id, remote: req.socket.remoteAddress }, 'ws: client connected');
    ws.on('pong', () => (c.alive = true));
    ws.on('message', (raw: RawData, isBinary: boolean) => {
      let msg: unknown;
      try {
        msg = isBinary ? undefined : JSON.parse(raw.toString());
      } catch {
        msg = undefined;
      }
      if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return sendControl(c, { op: 'error', error: 'messages are JSON objects with an "op"' });
      const m = msg as Record<string, unknown>;
      if (m['op'] === 'subscribe') subscribe(c, m);
      else if (m['op'] === 'unsubscribe') {
        c.subscribed = false;
        c.queue = [];
        c.replay = [];
      } else sendControl(c, { op: 'error', error: `unknown op ${JSON.stringify(m['op'])}` });
    });
    ws.on('close', () => {
      clients.delete(c);
      log.info({ client: c.id, sent: c.sent, dropped: c.dropped }, 'ws: client gone');
      checkDrained();
    });
    ws.on('error', () => undefined);
    sendControl(c, { op: 'hello', protocol: WS_PROTOCOL_VERSION, schemaVersion: EVENT_SCHEMA_VERSION, ring: { size: o.ringSize, held: ring.length } });
    const fromUrl = subscribeFromUrl(url);
    if (fromUrl !== undefined) subscribe(c, fromUrl);
  };

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!standalone && url.pathname !== o.path) return; // another handler's path
    if (closed) return reject(socket, 503, 'Service Unavailable');
    if (options.token !== undefined && !tokenOk(options.token, req, url)) {
      log.warn({ remote: req.socket.remoteAddress }, 'ws: rejected a client with a missing or wrong token');
      return reject(socket, 401, 'Unauthorized');
    }
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, req, url));
  };

  let server: Server;
  if (standalone) {
    server = createServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('cafe-stream events: connect with a WebSocket client (see docs/sinks.md)\n');
    });
    server.on('upgrade', onUpgrade);
    await new Promise<void>((resolve, rejectListen) => {
      server.once('error', (err) => rejectListen(new SinkError('ws', `cannot listen on ${o.host}:${options.port}: ${errorLine(err)}`, { cause: err })));
      server.listen(options.port, o.host, () => resolve());
    });
    const a = server.address() as AddressInfo;
    log.info({ url: `ws://${a.address}:${a.port}/` }, 'ws: listening');
  } else {
    server = options.server!;
    server.on('upgrade', onUpgrade);
  }

  const pinger = setInterval(() => {
    for (const c of clients) {
      if (!c.alive) {
        log.info({ client: c.id }, 'ws: no pong, terminating');
        c.ws.terminate();
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }, o.pingIntervalMs);
  pinger.unref();

  const sink: WsSink = {
    name: 'ws',
    async write(event: TimelineEvent): Promise<void> {
      if (closed) throw new SinkError('ws', 'write after close');
      ring.push(event);
      let data: string | undefined;
      for (const c of clients) {
        if (!c.subscribed || !matches(c.filter, event)) continue;
        data ??= eventMessage(event);
        enqueue(c, data);
        pump(c);
      }
    },
    async flush(): Promise<void> {
      if (allDrained()) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => drainWaiters.push(resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, o.flushTimeoutMs))),
      ]);
      clearTimeout(timer);
      // slow clients must not hold the pipeline: what they have not taken is theirs to lose (counted below)
      if (!allDrained()) log.warn({ clients: sink.clients().filter((c) => c.queued > 0).map((c) => c.id) }, 'ws: flush timed out with clients still behind');
    },
    async close(): Promise<void> {
      if (closed) return;
      await sink.flush();
      closed = true;
      clearInterval(pinger);
      server.off('upgrade', onUpgrade);
      for (const c of clients) c.ws.close(1001, 'server shutting down');
      // give clients a moment to answer the close frame, then cut the rest
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1000);
        const check = (): void => {
          if (clients.size === 0) {
            clearTimeout(t);
            resolve();
          } else setTimeout(check, 20);
        };
        check();
      });
      for (const c of clients) c.ws.terminate();
      wss.close();
      if (standalone) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    stats(): WsSinkStats {
      let buffered = 0;
      for (const c of clients) buffered += c.queue.length + c.replay.length;
      return { sent: total.sent, buffered, dropped: total.dropped, clients: clients.size, ringHeld: ring.length };
    },
    clients(): WsClientStats[] {
      return [...clients].map((c) => ({
        id: c.id,
        queued: c.queue.length,
        maxQueued: c.maxQueued,
        sent: c.sent,
        dropped: c.dropped,
        bufferedAmount: c.ws.bufferedAmount,
        subscribed: c.subscribed,
      }));
    },
    address(): AddressInfo | undefined {
      return standalone ? (server.address() as AddressInfo) : undefined;
    },
  };
  return sink;
}
