// The reading side: events another cafe-stream process publishes, as the same typed EventStream the analysis
// gives. Every message is checked with parseEvent (schema v1); one that is not an event is skipped and passed
// to `onInvalid`. Kafka delivery is at-least-once, so events are de-duplicated by id (the last 100 000 ids).
// Both are cold and never complete by themselves (a topic or a feed has no end): abort `signal` to complete,
// unsubscribe (or `break` out of `for await`) to disconnect at once. With `for await`, a slow loop body pauses
// the Kafka consumer or the WebSocket, so nothing piles up in memory.
import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { WebSocket } from 'ws';
import { ConfigError, type InvalidEventError, SinkError, errorLine, isCafeStreamError } from '../errors.js';
import { newKafka } from '../kafka/client.js';
import type { KafkaSecurity } from '../kafka/security.js';
import { retry } from '../retry.js';
import { DEFAULT_KAFKA_TOPIC } from '../sinks/kafka-sink.js';
import type { TimelineEvent, TimelineEventType } from '../types.js';
import { EventStream, type PacedTarget } from './event-stream.js';
import { type CafeStreamEvent, parseEvent } from './parse-event.js';
import { SpellTracker } from './spells.js';

export interface FromKafkaOptions {
  /** bootstrap servers, host:port. */
  brokers: string[];
  /** default 'cafe-stream.events'. */
  topic?: string;
  /** consumer group; default a fresh one, so every reader sees every event. */
  groupId?: string;
  /** start at the oldest retained event instead of new ones. */
  fromBeginning?: boolean;
  /** TLS / SASL; default from the CAFE_STREAM_KAFKA_* environment. */
  security?: KafkaSecurity;
  /** aborting disconnects and completes. */
  signal?: AbortSignal;
  /** a message that is not a valid event (skipped). */
  onInvalid?: (error: InvalidEventError, raw: string) => void;
  /** one line per notable step (waiting for the topic to exist). */
  log?: (line: string) => void;
  /**
   * A worker that dies writes no track.end for the faces it was following. When the next worker's stream.start
   * says it replaces a lost worker, emit a track.end (reason `worker-lost`) for each track that worker left
   * open, built from what was seen of it (docs/events.md, "Worker hand-over"). Default true.
   */
  closeLostTracks?: boolean;
}

export interface FromWebSocketOptions {
  /** the shared token of the WebSocket sink (sent as Authorization: Bearer). */
  token?: string;
  /** resume after this event id (from the server's recent-event ring). */
  since?: string;
  /** only these streams / tracks ("t3" or "stream/t3") / event types; default everything. */
  streams?: string[];
  tracks?: string[];
  types?: TimelineEventType[];
  /** aborting closes the connection and completes. */
  signal?: AbortSignal;
  onInvalid?: (error: InvalidEventError, raw: string) => void;
  /** the server dropped events for this client because it read too slowly. */
  onDropped?: (count: number) => void;
  /** one line per notable step (retries, reconnects, a resume the server could not honour). */
  log?: (line: string) => void;
}

const DEDUPE_WINDOW = 100_000;

/** Remembers the last DEDUPE_WINDOW ids. */
function dedupe(): (id: string) => boolean {
  const seen = new Set<string>();
  return (id) => {
    if (seen.has(id)) return false;
    seen.add(id);
    if (seen.size > DEDUPE_WINDOW) seen.delete(seen.values().next().value!);
    return true;
  };
}

function parseOrReport(raw: string, onInvalid: FromKafkaOptions['onInvalid']): CafeStreamEvent | undefined {
  try {
    return parseEvent(raw);
  } catch (err) {
    if (isCafeStreamError(err) && err.code === 'CS_ERR_INVALID_EVENT') {
      onInvalid?.(err as InvalidEventError, raw);
      return undefined;
    }
    throw err;
  }
}

/** The events on a Kafka topic (the Kafka sink's or a worker group's), typed and de-duplicated. */
export function fromKafka(options: FromKafkaOptions): EventStream<CafeStreamEvent> {
  const topic = options.topic ?? DEFAULT_KAFKA_TOPIC;
  const kafka = newKafka({ clientId: 'cafe-stream-reader', brokers: options.brokers, ...(options.security ? { security: options.security } : {}) });
  return new EventStream<CafeStreamEvent>((out) => {
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([stop.signal, options.signal]) : stop.signal;
    const consumer = kafka.consumer({ groupId: options.groupId ?? `cafe-stream-reader-${randomUUID()}`, allowAutoTopicCreation: false });
    const fresh = dedupe();
    const spells = options.closeLostTracks === false ? undefined : new SpellTracker();
    let done = false;
    const finish = (err?: unknown): void => {
      if (done) return;
      done = true;
      stop.abort();
      void consumer.disconnect().catch(() => undefined).then(() => {
        if (err === undefined) out.complete();
        else out.error(new SinkError('kafka', `cannot read ${topic} from ${options.brokers.join(',')}: ${errorLine(err)}`, { cause: err }));
      });
    };
    // kafkajs restarts the consumer after retriable errors by itself; a crash without restart is final
    consumer.on(consumer.events.CRASH, (e) => (e.payload.restart ? undefined : finish(e.payload.error)));
    signal.addEventListener('abort', () => finish(), { once: true });
    void (async () => {
      // a reader may start before anything was published: wait for the topic rather than create it
      if (!(await waitForTopic(kafka, topic, signal, options.log))) return;
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: options.fromBeginning === true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          if (message.value === null || done) return;
          const event = parseOrReport(message.value.toString(), options.onInvalid);
          if (event === undefined || !fresh(event.id)) return;
          await out.next(event);
          if (spells === undefined || event.type === 'job.done') return;
          // the tracks a lost worker left open end here, right after the stream.start that says it was lost
          for (const end of spells.see(event, message.headers?.['worker']?.toString() ?? '')) if (fresh(end.id)) await out.next(end);
        },
      });
    })().catch((err: unknown) => (signal.aborted ? undefined : finish(err)));
    return () => {
      done = true;
      stop.abort();
      void consumer.disconnect().catch(() => undefined);
    };
  });
}

/** true once `topic` exists with leaders for its partitions; false if aborted first. */
async function waitForTopic(kafka: Kafka, topic: string, signal: AbortSignal, log?: (line: string) => void): Promise<boolean> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    let said = false;
    while (!signal.aborted) {
      const topics = await admin.listTopics();
      if (topics.includes(topic)) {
        const meta = await admin.fetchTopicMetadata({ topics: [topic] }).catch(() => undefined);
        if (meta?.topics[0]?.partitions.every((p) => p.leader >= 0)) return true;
      } else if (!said) {
        log?.(`topic ${topic} does not exist yet; waiting for it`);
        said = true;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    return false;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/**
 * The events a WebSocket sink serves (`cafe-stream analyze --ws`, toWebSocket()). A dropped connection is
 * re-opened with `since` = the last event received, so nothing is missed while the server's ring holds it; a
 * refused token (HTTP 401/403) is final.
 */
export function fromWebSocket(url: string, options: FromWebSocketOptions = {}): EventStream<TimelineEvent> {
  if (!/^wss?:\/\//.test(url)) throw new ConfigError('url', `want a ws:// or wss:// URL, got ${JSON.stringify(url)}`);
  return new EventStream<TimelineEvent>((out) => {
    const stop = new AbortController();
    const stopped = options.signal ? AbortSignal.any([stop.signal, options.signal]) : stop.signal;
    let lastId = options.since;
    let left = false;
    const connectOnce = (): Promise<'closed' | 'stopped'> => connect(url, options, stopped, () => lastId, (e) => {
      lastId = e.id;
      return left ? undefined : out.next(e);
    });
    void (async () => {
      while (!stopped.aborted) {
        const onRetry = ({ error, delayMs }: { error: unknown; delayMs: number }): void => {
          if (!stopped.aborted) options.log?.(`${errorLine(error)}; retrying in ${(delayMs / 1000).toFixed(1)} s`);
        };
        const r = await retry({ maxAttempts: 20, initialDelayMs: 250, maxDelayMs: 5_000, signal: stopped, onRetry })(connectOnce).catch((err: unknown) => {
          if (stopped.aborted) return 'stopped' as const;
          throw err;
        });
        if (r === 'stopped') break;
        options.log?.(`connection to ${url} closed; reconnecting${lastId ? ` from ${lastId}` : ''}`);
      }
    })().then(
      () => (left ? undefined : out.complete()),
      (err: unknown) => (left ? undefined : out.error(err)),
    );
    return () => {
      left = true;
      stop.abort();
    };
  });
}

function connect(
  url: string,
  options: FromWebSocketOptions,
  stopped: AbortSignal,
  since: () => string | undefined,
  emit: PacedTarget<TimelineEvent>['next'],
): Promise<'closed' | 'stopped'> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options.token === undefined ? {} : { headers: { authorization: `Bearer ${options.token}` } });
    let opened = false;
    const onStop = (): void => ws.close(1000);
    stopped.addEventListener('abort', onStop, { once: true });
    ws.on('unexpected-response', (_req, res) => {
      const final = res.statusCode === 401 || res.statusCode === 403;
      reject(new SinkError('ws', `${url} answered HTTP ${res.statusCode}${final ? ' (check the token)' : ''}`, { retriable: !final }));
      ws.terminate();
    });
    ws.on('open', () => {
      opened = true;
      const from = since();
      ws.send(JSON.stringify({ op: 'subscribe', streams: options.streams ?? [], tracks: options.tracks ?? [], types: options.types ?? [], ...(from ? { since: from } : {}) }));
    });
    ws.on('message', (raw) => {
      let m: { op?: string; event?: unknown; count?: number; resumed?: boolean | null; error?: string };
      try {
        m = JSON.parse(raw.toString()) as typeof m;
      } catch {
        return;
      }
      if (m.op === 'event') {
        const event = parseOrReport(JSON.stringify(m.event), options.onInvalid);
        if (event === undefined || event.type === 'job.done') return;
        const wait = emit(event);
        if (wait !== undefined) {
          // the consumer is behind: stop reading the socket until it catches up (TCP pushes back on the server)
          ws.pause();
          void wait.then(() => ws.resume());
        }
      } else if (m.op === 'dropped') options.onDropped?.(m.count ?? 0);
      else if (m.op === 'subscribed' && m.resumed === false) options.log?.(`could not resume after ${since()}: the server no longer holds it; events in between are missing`);
      else if (m.op === 'error') options.log?.(`server: ${m.error}`);
    });
    ws.on('error', (err) => {
      if (!opened) reject(new SinkError('ws', `cannot connect to ${url}: ${errorLine(err)}`, { retriable: true, cause: err }));
    });
    ws.on('close', () => {
      stopped.removeEventListener('abort', onStop);
      if (stopped.aborted) resolve('stopped');
      else if (opened) resolve('closed');
      else reject(new SinkError('ws', `connection to ${url} closed before it opened`, { retriable: true }));
    });
  });
}
