// The WebSocket sink with real sockets (ws clients on loopback): protocol, filters, slow clients, resume, auth.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createWsSink, type WsSink, type WsSinkOptions } from '../src/sinks/ws-sink.js';
import { EVENT_SCHEMA_VERSION, type TimelineEvent } from '../src/types.js';
import { syntheticEvents } from './helpers/synthetic-events.js';

const silent = { info: () => undefined, warn: () => undefined };

interface Msg {
  op: string;
  event?: TimelineEvent;
  count?: number;
  total?: number;
  [k: string]: unknown;
}

interface TestClient {
  ws: WebSocket;
  messages: Msg[];
  events(): TimelineEvent[];
  waitFor(pred: (m: Msg[]) => boolean, what: string, timeoutMs?: number): Promise<void>;
}

function connect(url: string, headers: Record<string, string> = {}): Promise<TestClient> {
  const ws = new WebSocket(url, { headers });
  const messages: Msg[] = [];
  const waiters: (() => void)[] = [];
  ws.on('message', (raw) => {
    messages.push(JSON.parse(raw.toString()) as Msg);
    for (const w of waiters.splice(0)) w();
  });
  const client: TestClient = {
    ws,
    messages,
    events: () => messages.filter((m) => m.op === 'event').map((m) => m.event!),
    async waitFor(pred, what, timeoutMs = 30_000) {
      const t0 = Date.now();
      while (!pred(messages)) {
        if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(client));
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
  });
}

async function until(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let sinks: WsSink[] = [];
async function standalone(o: Partial<WsSinkOptions> = {}): Promise<{ sink: WsSink; url: string }> {
  const sink = await createWsSink({ port: 0, log: silent, flushTimeoutMs: 500, ...o });
  sinks.push(sink);
  return { sink, url: `ws://127.0.0.1:${sink.address()!.port}/` };
}
async function subscribed(url: string, sub: object = {}): Promise<TestClient> {
  const c = await connect(url);
  c.ws.send(JSON.stringify({ op: 'subscribe', ...sub }));
  await c.waitFor((m) => m.some((x) => x.op === 'subscribed'), 'subscribed');
  return c;
}
afterEach(async () => {
  for (const s of sinks) await s.close();
  sinks = [];
});

describe('ws sink', () => {
  it('says hello, then sends every event in order to a subscribed client', async () => {
    const { sink, url } = await standalone();
    expect(sink.address()!.address).toBe('127.0.0.1');
    const c = await subscribed(url);
    expect(c.messages[0]).toMatchObject({ op: 'hello', protocol: 1, schemaVersion: EVENT_SCHEMA_VERSION });
    const events = syntheticEvents({ streams: 2, tracksPerStream: 2, observationsPerTrack: 10 });
    for (const e of events) await sink.write(e);
    await c.waitFor(() => c.events().length === events.length, 'all events');
    expect(c.events().map((e) => e.id)).toEqual(events.map((e) => e.id));
    expect(c.events()).toEqual(events);
    expect(sink.stats()).toMatchObject({ sent: events.length, dropped: 0, buffered: 0, clients: 1 });
    c.ws.close();
  });

  it('filters by stream, track and type; the URL form works too', async () => {
    const { sink, url } = await standalone();
    const byStream = await subscribed(url, { streams: ['cam-1'] });
    const byTrack = await subscribed(url, { tracks: ['cam-0/t1', 't2'] });
    const byType = await subscribed(url, { types: ['face.segment', 'track.end'] });
    const viaUrl = await connect(`${url}?streams=cam-0&types=face.observation`);
    const bad = await connect(url);
    bad.ws.send(JSON.stringify({ op: 'subscribe', types: ['emotion'] }));
    const events = syntheticEvents({ streams: 2, tracksPerStream: 2, observationsPerTrack: 5 });
    for (const e of events) await sink.write(e);
    await sink.flush();
    const expectIds = (c: TestClient, keep: (e: TimelineEvent) => boolean) =>
      c.waitFor(() => c.events().length === events.filter(keep).length, 'filtered events').then(() =>
        expect(c.events().map((e) => e.id)).toEqual(events.filter(keep).map((e) => e.id)),
      );
    await expectIds(byStream, (e) => e.streamId === 'cam-1');
    await expectIds(byTrack, (e) => 'trackId' in e && ((e.streamId === 'cam-0' && e.trackId === 't1') || e.trackId === 't2'));
    await expectIds(byType, (e) => e.type === 'face.segment' || e.type === 'track.end');
    await expectIds(viaUrl, (e) => e.streamId === 'cam-0' && e.type === 'face.observation');
    await bad.waitFor((m) => m.some((x) => x.op === 'error'), 'error reply');
    expect(bad.events()).toHaveLength(0);
    expect(bad.messages.find((x) => x.op === 'error')!['error']).toMatch(/unknown event type/);
    for (const c of [byStream, byTrack, byType, viaUrl, bad]) c.ws.close();
  });

  it('a client that stops reading costs at most its queue bound; drops are counted and announced', async () => {
    const clientQueue = 100;
    const { sink, url } = await standalone({ clientQueue, maxBufferedBytes: 16 * 1024, flushTimeoutMs: 100 });
    const slow = await subscribed(url);
    const reader = await subscribed(url);
    slow.ws.pause();
    const events = syntheticEvents({ streams: 1, tracksPerStream: 4, observationsPerTrack: 5000 });
    let maxBuffered = 0;
    for (const [i, e] of events.entries()) {
      await sink.write(e);
      maxBuffered = Math.max(maxBuffered, sink.stats().buffered);
      // let the reading client (same process) read now and then
      if (i % 20 === 0) await new Promise((r) => setImmediate(r));
    }
    const paused = sink.clients().find((c) => c.id === 1)!;
    expect(paused.maxQueued).toBeLessThanOrEqual(clientQueue);
    expect(paused.queued).toBeLessThanOrEqual(clientQueue);
    expect(paused.dropped).toBeGreaterThan(0);
    expect(maxBuffered).toBeLessThanOrEqual(2 * clientQueue);

    slow.ws.resume();
    const last = events.at(-1)!.id;
    const order = new Map(events.map((e, i) => [e.id, i]));
    for (const c of [slow, reader]) {
      // drop-oldest keeps the newest, so the last event always arrives
      await c.waitFor(() => c.events().some((e) => e.id === last), 'client catches up', 60_000);
      const announced = c.messages.filter((m) => m.op === 'dropped').reduce((n, m) => n + m.count!, 0);
      // every event was either delivered or announced as dropped, and what arrived is in order
      expect(c.events().length + announced).toBe(events.length);
      const idx = c.events().map((e) => order.get(e.id)!);
      expect(idx).toEqual([...idx].sort((a, b) => a - b));
    }
    const final = sink.clients();
    expect(final.find((c) => c.id === 1)!.dropped).toBe(paused.dropped);
    console.log(
      `ws slow client: written ${events.length}, delivered ${slow.events().length}, dropped ${paused.dropped}, ` +
        `max queue ${paused.maxQueued}/${clientQueue}; reading client dropped ${final.find((c) => c.id === 2)!.dropped}`,
    );
    slow.ws.close();
    reader.ws.close();
  });

  it('a client that reconnects with `since` resumes without a gap', async () => {
    const { sink, url } = await standalone({ ringSize: 1000 });
    const events = syntheticEvents({ streams: 1, tracksPerStream: 2, observationsPerTrack: 20 });
    const first = await subscribed(url);
    for (const e of events.slice(0, 15)) await sink.write(e);
    await first.waitFor(() => first.events().length === 15, 'first part');
    const lastSeen = first.events().at(-1)!.id;
    first.ws.close();
    await until(() => sink.stats().clients === 0, 'disconnect noticed');
    for (const e of events.slice(15, 30)) await sink.write(e); // missed while away
    const again = await subscribed(url, { since: lastSeen });
    expect(again.messages.find((m) => m.op === 'subscribed')).toMatchObject({ resumed: true, replayed: 15 });
    for (const e of events.slice(30)) await sink.write(e);
    await again.waitFor(() => again.events().length === events.length - 15, 'the rest');
    expect([...first.events(), ...again.events()].map((e) => e.id)).toEqual(events.map((e) => e.id));
    const unknown = await subscribed(url, { since: 'not-an-id' });
    expect(unknown.messages.find((m) => m.op === 'subscribed')).toMatchObject({ resumed: false, replayed: 0 });
    again.ws.close();
    unknown.ws.close();
  });

  it('rejects a missing or wrong token, accepts ?token= and Authorization: Bearer', async () => {
    const { url } = await standalone({ token: 's3cret' });
    await expect(connect(url)).rejects.toMatchObject({ status: 401 });
    await expect(connect(`${url}?token=wrong`)).rejects.toMatchObject({ status: 401 });
    await expect(connect(url, { authorization: 'Bearer nope' })).rejects.toMatchObject({ status: 401 });
    const a = await connect(`${url}?token=s3cret`);
    const b = await connect(url, { authorization: 'Bearer s3cret' });
    await a.waitFor((m) => m[0]?.op === 'hello', 'hello');
    await b.waitFor((m) => m[0]?.op === 'hello', 'hello');
    a.ws.close();
    b.ws.close();
  });

  it('terminates a connection that stops answering pings', async () => {
    const { sink, url } = await standalone({ pingIntervalMs: 50 });
    const dead = await subscribed(url);
    const live = await subscribed(url);
    dead.ws.pause(); // its pongs never come back
    await until(() => sink.stats().clients === 1, 'dead client terminated');
    expect(live.ws.readyState).toBe(WebSocket.OPEN);
    live.ws.close();
  });

  it('attaches to an existing HTTP server on its path', async () => {
    const server = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const sink = await createWsSink({ server, path: '/ws', log: silent });
    sinks.push(sink);
    expect(sink.address()).toBeUndefined();
    const c = await subscribed(`ws://127.0.0.1:${port}/ws`);
    const events = syntheticEvents({ streams: 1, tracksPerStream: 1, observationsPerTrack: 3 });
    for (const e of events) await sink.write(e);
    await c.waitFor(() => c.events().length === events.length, 'events');
    c.ws.close();
    await sink.close();
    sinks = [];
    expect(server.listening).toBe(true); // the owner's server stays up
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('rejects bad options at the edge', async () => {
    await expect(createWsSink({})).rejects.toMatchObject({ code: 'CS_ERR_CONFIG' });
    await expect(createWsSink({ port: 0, clientQueue: 0 })).rejects.toMatchObject({ code: 'CS_ERR_CONFIG' });
  });
});
