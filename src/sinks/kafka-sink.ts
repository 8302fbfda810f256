// Timeline events → one Kafka topic, through a bounded buffer that rides out broker outages.
//
// Topic: `cafe-stream.events` by default. Key: `${streamId}/${trackId}` for track events, `${streamId}` for
// stream events, so one track's events land in one partition, in order. Value: the event as UTF-8 JSON.
// Headers: `schema-version`, `event-type`, `event-id`, `content-type: application/json`.
//
// Delivery is at-least-once: one sender sends batches in order (idempotent producer, acks=-1, one request
// in flight); a batch leaves the buffer only once the broker acknowledged it, so a batch whose ack was lost
// (broker killed mid-request) is sent again and may be stored twice. Consumers de-duplicate by event id.
// While the broker is down events wait in the buffer (bounded); when it is full the overflow policy applies:
// `drop-oldest` (default: the oldest unsent event is dropped and counted, logged once per outage) or `block`
// (write() waits for room: a file source then pauses, nothing is lost).
// See docs/sinks.md.
import { Partitioners, type Producer, type Message } from 'kafkajs';
import { ConfigError, SinkError, errorLine } from '../errors.js';
import { checkBrokers, newKafka } from '../kafka/client.js';
import type { KafkaSecurity } from '../kafka/security.js';
import { createLogger } from '../log.js';
import type { SinkLog } from './sink-log.js';
import { backoffDelay, retry } from '../retry.js';
import { EVENT_SCHEMA_VERSION, type Sink, type SinkStats, type TimelineEvent } from '../types.js';

export const DEFAULT_KAFKA_TOPIC = 'cafe-stream.events';

export type OverflowPolicy = 'drop-oldest' | 'block';

export interface KafkaSinkOptions {
  /** bootstrap servers, host:port. */
  brokers: string[];
  topic?: string;
  clientId?: string;
  /** most events held (unsent + in flight) while the broker is slow or down. */
  bufferSize?: number;
  overflow?: OverflowPolicy;
  /** most events in one produce request. */
  batchSize?: number;
  /** create the topic at start if it is missing (otherwise the broker's auto-creation or an admin does). */
  createTopic?: boolean;
  /** partitions for a topic this sink creates. */
  partitions?: number;
  /** how long flush()/close() wait for the buffer to drain. */
  flushTimeoutMs?: number;
  /** backoff between send attempts while the broker is unreachable. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** pino or anything with info/warn(obj, msg); default: pino JSON lines on stderr. */
  log?: SinkLog;
  /** TLS / SASL (src/kafka/security.ts); default: from the CAFE_STREAM_KAFKA_* environment. */
  security?: KafkaSecurity;
  /** extra headers on every message (a worker's id, so consumers can tell who produced an event). */
  headers?: Record<string, string>;
}

export interface KafkaSinkStats extends SinkStats {
  /** true while the last send succeeded. */
  connected: boolean;
  /** failed send attempts (each retried). */
  sendErrors: number;
  topic: string;
}

export interface KafkaSink extends Sink {
  stats(): KafkaSinkStats;
}

function resolveOptions(o: KafkaSinkOptions) {
  checkBrokers(o.brokers);
  const r = {
    brokers: o.brokers,
    topic: o.topic ?? DEFAULT_KAFKA_TOPIC,
    clientId: o.clientId ?? 'cafe-stream',
    bufferSize: o.bufferSize ?? 10_000,
    overflow: o.overflow ?? 'drop-oldest',
    batchSize: o.batchSize ?? 500,
    createTopic: o.createTopic ?? false,
    partitions: o.partitions ?? 3,
    flushTimeoutMs: o.flushTimeoutMs ?? 30_000,
    retryInitialMs: o.retryInitialMs ?? 200,
    retryMaxMs: o.retryMaxMs ?? 5_000,
  };
  if (!/^[A-Za-z0-9._-]{1,249}$/.test(r.topic)) throw new ConfigError('kafka.topic', `not a valid topic name: ${JSON.stringify(r.topic)}`);
  if (!(Number.isInteger(r.bufferSize) && r.bufferSize >= 1)) throw new ConfigError('kafka.bufferSize', 'must be an integer >= 1');
  if (r.overflow !== 'drop-oldest' && r.overflow !== 'block') throw new ConfigError('kafka.overflow', 'must be drop-oldest or block');
  if (!(Number.isInteger(r.batchSize) && r.batchSize >= 1)) throw new ConfigError('kafka.batchSize', 'must be an integer >= 1');
  if (!(Number.isInteger(r.partitions) && r.partitions >= 1)) throw new ConfigError('kafka.partitions', 'must be an integer >= 1');
  r.batchSize = Math.min(r.batchSize, r.bufferSize);
  return r;
}

/** The partition key: one track's events share it, so they stay in order in one partition. */
export function kafkaKey(event: TimelineEvent): string {
  return 'trackId' in event ? `${event.streamId}/${event.trackId}` : event.streamId;
}

export function toKafkaMessage(event: TimelineEvent, extraHeaders: Record<string, string> = {}): Message {
  return {
    key: kafkaKey(event),
    value: JSON.stringify(event),
    headers: {
      ...extraHeaders,
      'schema-version': event.schemaVersion ?? EVENT_SCHEMA_VERSION,
      'event-type': event.type,
      'event-id': event.id,
      'content-type': 'application/json',
    },
  };
}

/** kafkajs marks transient protocol errors `retriable`, also on the cause of its own retries-exceeded error. */
function isRetriableKafkaError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause ?? (e as { originalError?: unknown }).originalError, depth++) {
    if ((e as { retriable?: boolean }).retriable === true || /does not host this topic-partition|leader/i.test(e.message)) return true;
  }
  return false;
}

/** Resolves once the sink is set up; the broker may still be down (events then wait in the buffer). */
export async function createKafkaSink(options: KafkaSinkOptions): Promise<KafkaSink> {
  const o = resolveOptions(options);
  const log = options.log ?? createLogger('cafe-stream');
  // our own send loop retries with backoff and logs one line per outage, so kafkajs' own retries stay short
  const kafka = newKafka({
    clientId: o.clientId,
    brokers: o.brokers,
    ...(options.security ? { security: options.security } : {}),
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1_000 },
  });

  if (o.createTopic) {
    const admin = kafka.admin();
    try {
      await admin.connect();
      // A broker that has just started (or just created the topic) can answer the leader wait with "does not host
      // this topic-partition" until its metadata settles: retriable, so try again for a few seconds.
      const created = await retry({ maxAttempts: 6, initialDelayMs: 250, maxDelayMs: 2_000, isRetriable: isRetriableKafkaError })(() =>
        admin.createTopics({ topics: [{ topic: o.topic, numPartitions: o.partitions, replicationFactor: -1 }], waitForLeaders: true }),
      );
      log.info({ topic: o.topic, partitions: o.partitions, created }, 'kafka: topic ready');
    } catch (err) {
      throw new SinkError('kafka', `could not create topic ${o.topic} on ${o.brokers.join(',')}: ${errorLine(err)}`, { cause: err });
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  const newProducer = (): Producer =>
    kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: true,
      createPartitioner: Partitioners.DefaultPartitioner,
      retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1_000 },
    });

  let producer = newProducer();
  let producerReady = false;
  // FIFO of accepted, unsent events; `inflight` is the batch being sent (kept until acked).
  let queue: TimelineEvent[] = [];
  let head = 0;
  let inflight: TimelineEvent[] = [];
  let sent = 0;
  let dropped = 0;
  let sendErrors = 0;
  let connected = false;
  let droppedThisOutage = false;
  let closed = false;
  let stopLoop = false;
  // wakeIdle: a write arrived while the sender idled; wakeSleep: close() cuts a backoff short.
  // Kept apart so writes during an outage do not turn the backoff into a busy retry loop.
  let wakeIdle: (() => void) | undefined;
  let wakeSleep: (() => void) | undefined;
  let drainWaiters: (() => void)[] = [];
  let roomWaiters: (() => void)[] = [];
  let sleepTimer: NodeJS.Timeout | undefined;
  let outageSince: number | undefined;

  const waiting = (): number => queue.length - head;
  const buffered = (): number => waiting() + inflight.length;

  const notify = (): void => {
    if (buffered() === 0) {
      const w = drainWaiters;
      drainWaiters = [];
      for (const f of w) f();
    }
    while (roomWaiters.length > 0 && buffered() < o.bufferSize) roomWaiters.shift()!();
  };

  const compact = (): void => {
    if (head > 1024 && head * 2 > queue.length) {
      queue = queue.slice(head);
      head = 0;
    }
  };

  const takeBatch = (): TimelineEvent[] => {
    const n = Math.min(o.batchSize, waiting());
    const batch = queue.slice(head, head + n);
    head += n;
    compact();
    return batch;
  };

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      sleepTimer = setTimeout(resolve, ms);
      wakeSleep = () => {
        clearTimeout(sleepTimer);
        resolve();
      };
    });

  const resetProducer = async (): Promise<void> => {
    const old = producer;
    producerReady = false;
    producer = newProducer();
    await old.disconnect().catch(() => undefined);
  };

  // The one sender: batches go out strictly one after another, so per-key order holds across retries.
  const loop = async (): Promise<void> => {
    let attempt = 0;
    while (!stopLoop) {
      if (inflight.length === 0) inflight = takeBatch();
      if (inflight.length === 0) {
        await new Promise<void>((resolve) => (wakeIdle = resolve));
        wakeIdle = undefined;
        continue;
      }
      try {
        if (!producerReady) {
          await producer.connect();
          producerReady = true;
        }
        await producer.send({ topic: o.topic, acks: -1, messages: inflight.map((e) => toKafkaMessage(e, options.headers)) });
        sent += inflight.length;
        inflight = [];
        attempt = 0;
        if (!connected) {
          if (outageSince !== undefined) {
            log.info({ topic: o.topic, downForMs: Date.now() - outageSince, buffered: buffered() }, 'kafka: broker reachable again, sending the buffer');
          }
          connected = true;
          outageSince = undefined;
          droppedThisOutage = false;
        }
        notify();
      } catch (err) {
        sendErrors++;
        attempt++;
        if (connected || outageSince === undefined) {
          outageSince ??= Date.now();
          log.warn({ topic: o.topic, brokers: o.brokers, err: errorLine(err), bufferSize: o.bufferSize, overflow: o.overflow }, 'kafka: send failed, buffering until the broker answers');
        }
        connected = false;
        // A non-retriable error (e.g. the broker lost our producer state) needs a fresh producer id;
        // resending the same batch with it is what makes delivery at-least-once rather than exactly-once.
        if ((err as { retriable?: unknown }).retriable !== true || attempt % 5 === 0) await resetProducer();
        if (stopLoop) break;
        await sleep(backoffDelay({ initialDelayMs: o.retryInitialMs, maxDelayMs: o.retryMaxMs, factor: 2, jitter: 0.3, random: Math.random }, attempt));
        wakeSleep = undefined;
      }
    }
  };
  const loopDone = loop();

  const dropOldest = (): void => {
    if (waiting() > 0) {
      head++;
      compact();
    }
    dropped++;
    if (!droppedThisOutage) {
      droppedThisOutage = true;
      log.warn({ topic: o.topic, bufferSize: o.bufferSize }, 'kafka: buffer full, dropping the oldest unsent events (counted in stats().dropped)');
    }
  };

  const sink: KafkaSink = {
    name: 'kafka',
    async write(event: TimelineEvent): Promise<void> {
      if (closed) throw new SinkError('kafka', 'write after close');
      if (buffered() >= o.bufferSize) {
        if (o.overflow === 'block') {
          while (buffered() >= o.bufferSize && !closed) await new Promise<void>((resolve) => roomWaiters.push(resolve));
          if (closed) throw new SinkError('kafka', 'closed while waiting for buffer room');
        } else if (waiting() > 0) {
          dropOldest();
        } else {
          // everything held is in flight (it may already be stored): the new event is the one dropped
          dropOldest();
          return;
        }
      }
      queue.push(event);
      wakeIdle?.();
    },

    async flush(): Promise<void> {
      if (buffered() === 0) return;
      let timer: NodeJS.Timeout | undefined;
      const drained = new Promise<boolean>((resolve) => drainWaiters.push(() => resolve(true)));
      const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), o.flushTimeoutMs)));
      const ok = await Promise.race([drained, timeout]);
      clearTimeout(timer);
      if (!ok) {
        throw new SinkError('kafka', `flush timed out after ${o.flushTimeoutMs} ms with ${buffered()} events undelivered to ${o.brokers.join(',')}`, { retriable: true });
      }
    },

    async close(): Promise<void> {
      if (closed) return;
      let flushErr: unknown;
      try {
        await sink.flush();
      } catch (err) {
        flushErr = err;
        // never silent, even if the caller swallows the error
        log.warn({ topic: o.topic, undelivered: buffered(), sent, dropped }, 'kafka: closing with events undelivered');
      }
      closed = true;
      stopLoop = true;
      for (const f of roomWaiters.splice(0)) f();
      wakeIdle?.();
      wakeSleep?.();
      await loopDone;
      await producer.disconnect().catch(() => undefined);
      if (flushErr !== undefined) throw flushErr;
    },

    stats(): KafkaSinkStats {
      return { sent, buffered: buffered(), dropped, connected, sendErrors, topic: o.topic };
    },
  };
  return sink;
}
