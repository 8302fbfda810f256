// `cafe-stream subscribe` against the real broker and a real WebSocket sink: the same events come out,
// once each (Kafka duplicates removed by id), filtered, as JSONL or one readable line per event.
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { formatEvent, subscribe, type SubscribeOptions } from '../src/cli/subscribe.js';
import { createKafkaSink } from '../src/sinks/kafka-sink.js';
import { createWsSink } from '../src/sinks/ws-sink.js';
import type { TimelineEvent } from '../src/types.js';
import { KAFKA_BOOTSTRAP, startBroker, uniqueTopic } from './helpers/kafka.js';
import { syntheticEvents } from './helpers/synthetic-events.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const silent = { info: () => undefined, warn: () => undefined };
const base: SubscribeOptions = { topic: 'x', stream: [], track: [], type: [] };

function capture(): { out: string[]; err: string[]; io: { out: (l: string) => void; err: (l: string) => void; signal: AbortSignal }; ac: AbortController } {
  const out: string[] = [];
  const err: string[] = [];
  const ac = new AbortController();
  return { out, err, ac, io: { out: (l) => out.push(l), err: (l) => err.push(l), signal: ac.signal } };
}

async function publish(topic: string, events: TimelineEvent[]): Promise<void> {
  const sink = await createKafkaSink({ brokers: [KAFKA_BOOTSTRAP], topic, createTopic: true, log: silent });
  for (const e of events) await sink.write(e);
  await sink.close();
}

beforeAll(() => startBroker());

describe('subscribe', () => {
  it('formats one readable line per event: time, stream, track, type, label/confidence', () => {
    const events = syntheticEvents({ streams: 1, tracksPerStream: 1, observationsPerTrack: 2 });
    const lines = events.map(formatEvent);
    expect(lines).toHaveLength(events.length);
    const obs = events.find((e) => e.type === 'face.observation')!;
    expect(formatEvent(obs)).toMatch(/^00:00\.00 {2}cam-0 {2}t1 {4}face\.observation {2}\S+ 0\.70$/);
    expect(lines[0]).toContain('stream.start');
    expect(lines.at(-1)).toMatch(/stream\.end .* eof, 2 frames, 1 tracks/);
    // live (wall-clock) times print as a time of day
    expect(formatEvent({ ...obs, time: 1_700_000_000.25 })).toMatch(/^22:13:20\.250 /);
  });

  it('--kafka --from-beginning --json prints each event once, even when the topic holds it twice', async () => {
    const topic = uniqueTopic('subscribe');
    const events = syntheticEvents({ streams: 2, tracksPerStream: 2, observationsPerTrack: 5, prefix: topic });
    await publish(topic, events);
    await publish(topic, events.slice(0, 10)); // a redelivery, as after a broker restart
    const { out, io } = capture();
    const code = await subscribe({ ...base, kafka: [KAFKA_BOOTSTRAP], topic, fromBeginning: true, json: true, maxEvents: events.length }, io);
    expect(code).toBe(0);
    const got = out.map((l) => JSON.parse(l) as TimelineEvent);
    expect(new Set(got.map((e) => e.id))).toEqual(new Set(events.map((e) => e.id)));
    expect(got).toHaveLength(events.length);
  });

  it('--kafka --stream filters, and a signal ends it cleanly', async () => {
    const topic = uniqueTopic('subscribe');
    const events = syntheticEvents({ streams: 2, tracksPerStream: 1, observationsPerTrack: 4, prefix: 'cam' });
    await publish(topic, events);
    const { out, io, ac } = capture();
    const want = events.filter((e) => e.streamId === 'cam-1');
    const run = subscribe({ ...base, kafka: [KAFKA_BOOTSTRAP], topic, fromBeginning: true, stream: ['cam-1'] }, io);
    const t0 = Date.now();
    while (out.length < want.length && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    expect(await run).toBe(0);
    // Kafka orders per key (stream, stream/track), not across keys
    expect([...out].sort()).toEqual(want.map(formatEvent).sort());
    const trackLines = (lines: string[]): string[] => lines.filter((l) => l.includes('  t1  '));
    expect(trackLines(out)).toEqual(trackLines(want.map(formatEvent)));
  });

  it('--ws gets live events with filters; a bad token is an error with the sink exit code', async () => {
    const sink = await createWsSink({ port: 0, token: 'tok', log: silent });
    const url = `ws://127.0.0.1:${sink.address()!.port}/`;
    try {
      const events = syntheticEvents({ streams: 1, tracksPerStream: 2, observationsPerTrack: 5 });
      const want = events.filter((e) => e.type === 'face.observation' && 'trackId' in e && e.trackId === 't2');
      const { out, io } = capture();
      const run = subscribe({ ...base, ws: url, token: 'tok', type: ['face.observation'], track: ['t2'], json: true, maxEvents: want.length }, io);
      const t0 = Date.now();
      while (!sink.clients().some((c) => c.subscribed) && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 20));
      for (const e of events) await sink.write(e);
      expect(await run).toBe(0);
      expect(out.map((l) => (JSON.parse(l) as TimelineEvent).id)).toEqual(want.map((e) => e.id));

      const bad = capture();
      expect(await subscribe({ ...base, ws: url, token: 'nope' }, bad.io)).toBe(8);
      expect(bad.err.join('\n')).toMatch(/HTTP 401/);
    } finally {
      await sink.close();
    }
  });

  it('the CLI prints the timeline and exits 0 on SIGINT', async () => {
    const topic = uniqueTopic('subscribe-cli');
    const events = syntheticEvents({ streams: 1, tracksPerStream: 1, observationsPerTrack: 3 });
    await publish(topic, events);
    const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), 'subscribe', '--kafka', KAFKA_BOOTSTRAP, '--topic', topic, '--from-beginning'], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const t0 = Date.now();
    while (stdout.split('\n').filter(Boolean).length < events.length && child.exitCode === null && Date.now() - t0 < 90_000) {
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill('SIGINT');
    expect(await exited, stderr).toBe(0);
    expect(stdout.trim().split('\n').sort()).toEqual(events.map(formatEvent).sort());
  });
});
