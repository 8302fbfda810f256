// The Kafka sink against a real single-node Kafka 4 broker (scripts/kafka.sh), read back by kafkajs and by kcat.
import { beforeAll, describe, expect, it } from 'vitest';
import { SinkError } from '../src/errors.js';
import { createKafkaSink, kafkaKey } from '../src/sinks/kafka-sink.js';
import { EVENT_SCHEMA_VERSION, type TimelineEvent } from '../src/types.js';
import { KAFKA_BOOTSTRAP, brokerAsync, dedupeById, readIdsByKey, readWithKafkajs, readWithKcat, startBroker, uniqueTopic } from './helpers/kafka.js';
import { assertValidEvent } from './helpers/schema.js';
import { idsByKey, syntheticEvents } from './helpers/synthetic-events.js';

// records what the sink logs, so tests can assert it says what happened
function recordingLog() {
  const lines: string[] = [];
  const rec = (_obj: object, msg: string): void => void lines.push(msg);
  return { lines, log: { info: rec, warn: rec } };
}

async function until(cond: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function expectSameEventsInKeyOrder(sent: TimelineEvent[], read: { key: string; value: string }[]): void {
  const want = idsByKey(sent, kafkaKey);
  const got = readIdsByKey(read as never);
  expect(new Set(got.keys())).toEqual(new Set(want.keys()));
  for (const [key, ids] of want) expect(got.get(key), `order for key ${key}`).toEqual(ids);
}

beforeAll(() => startBroker());

describe('kafka sink (real broker)', () => {
  it('delivers every event once, keyed by stream/track, in order per track, with headers (kafkajs + kcat)', async () => {
    const topic = uniqueTopic('sink');
    const events = syntheticEvents({ streams: 2, tracksPerStream: 3, observationsPerTrack: 20, prefix: topic });
    const sink = await createKafkaSink({ brokers: [KAFKA_BOOTSTRAP], topic, createTopic: true, partitions: 3, batchSize: 50, log: recordingLog().log });
    for (const e of events) await sink.write(e);
    await sink.close();
    expect(sink.stats()).toMatchObject({ sent: events.length, buffered: 0, dropped: 0 });

    const viaKafkajs = await readWithKafkajs(topic, events.length);
    const viaKcat = await readWithKcat(topic);
    for (const read of [viaKafkajs, viaKcat]) {
      expect(read).toHaveLength(events.length);
      expect(new Set(read.map((m) => m.headers['event-id']))).toEqual(new Set(events.map((e) => e.id)));
      expectSameEventsInKeyOrder(events, read);
      for (const m of read) {
        const ev = JSON.parse(m.value) as TimelineEvent;
        assertValidEvent(ev);
        expect(m.key).toBe(kafkaKey(ev));
        expect(m.headers).toEqual({ 'schema-version': EVENT_SCHEMA_VERSION, 'event-type': ev.type, 'event-id': ev.id, 'content-type': 'application/json' });
      }
    }
    // one track's events all in one partition
    const partitionsPerKey = new Map<string, Set<number>>();
    for (const m of viaKcat) partitionsPerKey.set(m.key, (partitionsPerKey.get(m.key) ?? new Set()).add(m.partition));
    for (const [key, parts] of partitionsPerKey) expect(parts.size, key).toBe(1);
    console.log(`kafka sink: sent ${events.length}, kafkajs read ${viaKafkajs.length}, kcat read ${viaKcat.length}, keys ${partitionsPerKey.size}`);
  });

  it('buffers while the broker is down and delivers everything after it restarts (at-least-once, no gaps)', async () => {
    const topic = uniqueTopic('restart');
    const events = syntheticEvents({ streams: 1, tracksPerStream: 3, observationsPerTrack: 30, prefix: topic });
    const third = Math.floor(events.length / 3);
    const { lines, log } = recordingLog();
    let down = { sent: 0, buffered: 0, dropped: 0 };
    const sink = await createKafkaSink({ brokers: [KAFKA_BOOTSTRAP], topic, createTopic: true, batchSize: 5, retryMaxMs: 1000, flushTimeoutMs: 120_000, log });
    try {
      // no flush: the broker goes down while the sender is still working through the first third
      for (const e of events.slice(0, third)) await sink.write(e);
      await until(() => sink.stats().sent > 0, 'the first acknowledged batch');
      await brokerAsync('stop');
      for (const e of events.slice(third, 2 * third)) await sink.write(e);
      await until(() => sink.stats().sendErrors > 0 && !sink.stats().connected, 'a failed send while the broker is down');
      down = sink.stats();
      expect(down.buffered).toBeGreaterThanOrEqual(third);
      expect(down.sent + down.buffered).toBe(2 * third);
      expect(down.dropped).toBe(0);

      await brokerAsync('start');
      for (const e of events.slice(2 * third)) await sink.write(e);
      await sink.flush();
      expect(sink.stats()).toMatchObject({ buffered: 0, dropped: 0, connected: true });
      expect(sink.stats().sent).toBe(events.length);
    } finally {
      startBroker();
      await sink.close().catch(() => undefined);
    }
    expect(lines).toContain('kafka: send failed, buffering until the broker answers');
    expect(lines).toContain('kafka: broker reachable again, sending the buffer');

    const read = await readWithKafkajs(topic, events.length);
    const { unique, duplicates } = dedupeById(read);
    expect(new Set(unique.map((m) => m.headers['event-id']))).toEqual(new Set(events.map((e) => e.id)));
    expectSameEventsInKeyOrder(events, unique);
    console.log(`kafka restart: sent ${events.length}, buffered ${down.buffered} while down (sent before: ${down.sent}), read ${read.length}, duplicates ${duplicates}`);
  });

  it('drop-oldest: a full buffer drops and counts the oldest unsent events, logs once, never grows', async () => {
    // nothing listens on port 1: every send fails, as with a broker that is down from the start
    const { lines, log } = recordingLog();
    const sink = await createKafkaSink({ brokers: ['127.0.0.1:1'], topic: 'unreachable', bufferSize: 10, batchSize: 4, flushTimeoutMs: 200, log });
    const events = syntheticEvents({ streams: 1, tracksPerStream: 1, observationsPerTrack: 22 });
    for (const e of events) await sink.write(e);
    const s = sink.stats();
    expect(s.buffered).toBe(10);
    expect(s.dropped).toBe(events.length - 10);
    expect(s.sent).toBe(0);
    expect(lines.filter((l) => l.startsWith('kafka: buffer full')).length).toBe(1);
    const err = await sink.close().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SinkError);
    expect((err as SinkError).message).toMatch(/10 events undelivered/);
  });

  it('block: write waits for room instead of dropping, and close releases it with an error', async () => {
    const sink = await createKafkaSink({ brokers: ['127.0.0.1:1'], topic: 'unreachable', bufferSize: 3, batchSize: 2, overflow: 'block', flushTimeoutMs: 100, log: recordingLog().log });
    const events = syntheticEvents({ streams: 1, tracksPerStream: 1, observationsPerTrack: 3 });
    for (const e of events.slice(0, 3)) await sink.write(e);
    let settled = false;
    const blocked = sink.write(events[3]!).then(
      () => (settled = true),
      (e: unknown) => {
        settled = true;
        throw e;
      },
    );
    await until(() => sink.stats().sendErrors >= 2, 'two failed sends');
    expect(settled).toBe(false);
    expect(sink.stats()).toMatchObject({ buffered: 3, dropped: 0 });
    await expect(sink.close()).rejects.toBeInstanceOf(SinkError);
    await expect(blocked).rejects.toBeInstanceOf(SinkError);
  });

  it('rejects bad options at the edge', async () => {
    await expect(createKafkaSink({ brokers: ['localhost'] })).rejects.toMatchObject({ code: 'CS_ERR_CONFIG' });
    await expect(createKafkaSink({ brokers: [KAFKA_BOOTSTRAP], topic: 'bad topic' })).rejects.toMatchObject({ code: 'CS_ERR_CONFIG' });
    await expect(createKafkaSink({ brokers: [KAFKA_BOOTSTRAP], bufferSize: 0 })).rejects.toMatchObject({ code: 'CS_ERR_CONFIG' });
  });
});
