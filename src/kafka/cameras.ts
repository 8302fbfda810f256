// The control topic of a worker group: one record per camera, compacted, so the topic *is* the camera list.
//
// Key = camera id, value = the camera's entry as JSON (the same fields as a `streams` entry of serve's config:
// src/config.ts), a tombstone (null value) = removed. Workers split its partitions among themselves (consumer
// group), so a camera lives wherever its partition is assigned. `putCamera` keeps a camera in the partition it
// already has (compaction works per partition) and puts a new one in the partition holding the fewest, so
// cameras spread evenly over partitions and so over workers.
import type { Kafka } from 'kafkajs';
import { parseStreamConfig, type StreamConfig } from '../config.js';
import { ConfigError, SinkError, errorLine } from '../errors.js';

export const DEFAULT_CAMERAS_TOPIC = 'cafe-stream.cameras';
export const DEFAULT_CAMERA_PARTITIONS = 12;

export interface CameraRecord {
  id: string;
  partition: number;
  /** null: a tombstone (removed). */
  config: StreamConfig | null;
  /** the value did not parse as a camera entry: why. */
  invalid?: string;
}

/** A control record's value → camera entry; the key is the id (a value's own id must agree). */
export function parseCameraValue(id: string, value: Buffer | string | null): StreamConfig | null {
  if (value === null) return null;
  let obj: unknown;
  try {
    obj = JSON.parse(value.toString());
  } catch (err) {
    throw new ConfigError('value', `camera ${id}: value is not JSON: ${errorLine(err)}`);
  }
  if (typeof obj !== 'object' || obj === null) throw new ConfigError('value', `camera ${id}: value is not an object`);
  const withId = { ...(obj as Record<string, unknown>) };
  if (withId['id'] !== undefined && withId['id'] !== id) throw new ConfigError('id', `camera ${id}: value says id ${JSON.stringify(withId['id'])}`);
  withId['id'] = id;
  return parseStreamConfig(withId, `camera ${id}`);
}

/** Creates the compacted control topic if missing. */
export async function ensureCamerasTopic(kafka: Kafka, topic: string, partitions = DEFAULT_CAMERA_PARTITIONS): Promise<void> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    const existing = await admin.listTopics();
    if (existing.includes(topic)) return;
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: partitions, replicationFactor: -1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }],
    });
  } catch (err) {
    throw new SinkError('kafka', `could not create the control topic ${topic}: ${errorLine(err)}`, { cause: err });
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** Every record of the topic, read to the end of each partition as it is now (no consumer group). */
export async function readTopicToEnd(kafka: Kafka, topic: string): Promise<{ partitions: number; records: { partition: number; offset: string; key: string; value: Buffer | null }[] }> {
  const admin = kafka.admin();
  await admin.connect();
  let ends: { partition: number; high: string; low: string }[];
  try {
    ends = (await admin.fetchTopicOffsets(topic)).map((o) => ({ partition: o.partition, high: o.high, low: o.low }));
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  const records: { partition: number; offset: string; key: string; value: Buffer | null }[] = [];
  const pending = new Set(ends.filter((e) => BigInt(e.high) > BigInt(e.low)).map((e) => e.partition));
  if (pending.size === 0) return { partitions: ends.length, records };
  const high = new Map(ends.map((e) => [e.partition, BigInt(e.high)]));
  // a throwaway group that never commits: it only borrows the fetch path
  const consumer = kafka.consumer({ groupId: `cafe-stream-reader-${process.pid}-${Date.now()}`, allowAutoTopicCreation: false });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new SinkError('kafka', `timed out reading ${topic}`)), 30_000);
      void consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ partition, message }) => {
            records.push({ partition, offset: message.offset, key: message.key?.toString() ?? '', value: message.value });
            if (BigInt(message.offset) + 1n >= high.get(partition)!) pending.delete(partition);
            if (pending.size === 0) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect().catch(() => undefined);
  }
  return { partitions: ends.length, records };
}

/** The cameras the topic holds now (latest record per id; tombstoned ids left out). */
export async function listCameras(kafka: Kafka, topic: string): Promise<{ partitions: number; cameras: CameraRecord[] }> {
  const { partitions, records } = await readTopicToEnd(kafka, topic);
  const latest = new Map<string, CameraRecord>();
  records.sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
  for (const r of records) {
    try {
      latest.set(r.key, { id: r.key, partition: r.partition, config: parseCameraValue(r.key, r.value) });
    } catch (err) {
      latest.set(r.key, { id: r.key, partition: r.partition, config: null, invalid: errorLine(err) });
    }
  }
  return { partitions, cameras: [...latest.values()].filter((c) => c.config !== null || c.invalid !== undefined).sort((a, b) => a.id.localeCompare(b.id)) };
}

/** Adds or replaces a camera; returns the partition it lives in. */
export async function putCamera(kafka: Kafka, topic: string, cfg: StreamConfig): Promise<number> {
  const { partitions, cameras } = await listCameras(kafka, topic);
  const current = cameras.find((c) => c.id === cfg.id);
  let partition = current?.partition;
  if (partition === undefined) {
    const load = Array.from({ length: partitions }, () => 0);
    for (const c of cameras) load[c.partition] = (load[c.partition] ?? 0) + 1;
    partition = load.indexOf(Math.min(...load));
  }
  await send(kafka, topic, partition, cfg.id, JSON.stringify(cfg));
  return partition;
}

/** Writes a tombstone for the camera; false when the topic does not hold it. */
export async function removeCamera(kafka: Kafka, topic: string, id: string): Promise<boolean> {
  const { cameras } = await listCameras(kafka, topic);
  const current = cameras.find((c) => c.id === id);
  if (current === undefined) return false;
  await send(kafka, topic, current.partition, id, null);
  return true;
}

async function send(kafka: Kafka, topic: string, partition: number, key: string, value: string | null): Promise<void> {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  try {
    await producer.connect();
    await producer.send({ topic, acks: -1, messages: [{ partition, key, value }] });
  } catch (err) {
    throw new SinkError('kafka', `could not write camera ${key} to ${topic}: ${errorLine(err)}`, { cause: err });
  } finally {
    await producer.disconnect().catch(() => undefined);
  }
}
