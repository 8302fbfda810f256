// The sinks as RxJS operators: `events$.pipe(toJsonl('out.jsonl'), toKafka({ brokers }))`. Each opens its sink
// on subscribe, writes every event in order and passes it on once the sink accepted it, and on completion flushes
// and closes the sink before completing; an error or unsubscribe closes it too.
//
// Backpressure: an Observable cannot be slowed, so events wait in this operator's queue while a write is in
// flight. The sinks bound their own buffers (Kafka: bufferSize with drop-oldest or block; WebSocket: a queue per
// client that drops the oldest), and a JSONL file takes lines faster than the models make them. To slow the
// analysis itself for a slow consumer, iterate the EventStream with `for await` and write there.
import { Observable, type MonoTypeOperatorFunction } from 'rxjs';
import type { Writable } from 'node:stream';
import { createJsonlSink } from '../sinks/jsonl-sink.js';
import { createKafkaSink, type KafkaSinkOptions } from '../sinks/kafka-sink.js';
import { createWsSink, type WsSinkOptions } from '../sinks/ws-sink.js';
import type { Sink, TimelineEvent } from '../types.js';

export type { KafkaSinkOptions, WsSinkOptions };

/** Writes through any Sink; the shared body of the operators below. */
export function toSink<T extends TimelineEvent>(open: () => Promise<Sink>): MonoTypeOperatorFunction<T> {
  return (source) =>
    new Observable<T>((subscriber) => {
      let finished = false;
      const opened = open();
      // the source is subscribed at once (a hot source loses nothing while the sink opens); writes wait for it
      let chain: Promise<unknown> = opened;
      const closeSink = (): void => void opened.then((s) => s.close()).catch(() => undefined);
      const fail = (err: unknown): void => {
        if (finished) return;
        finished = true;
        inner.unsubscribe();
        closeSink();
        subscriber.error(err);
      };
      const inner = source.subscribe({
        next: (e) => {
          chain = chain.then(async () => {
            if (finished) return;
            await (await opened).write(e);
            subscriber.next(e);
          });
          chain.catch(fail);
        },
        error: (err: unknown) => void chain.then(() => fail(err), fail),
        complete: () =>
          void chain
            .then(() => opened)
            .then(async (sink) => {
              await sink.flush();
              await sink.close();
            })
            .then(() => {
              if (finished) return;
              finished = true;
              subscriber.complete();
            }, fail),
      });
      return () => {
        if (finished) return;
        finished = true;
        inner.unsubscribe();
        closeSink();
      };
    });
}

/** JSONL: one event a line, appended to a file, or written to a stream (default stdout). */
export function toJsonl<T extends TimelineEvent>(target: string | Writable = process.stdout): MonoTypeOperatorFunction<T> {
  return toSink(() => createJsonlSink(typeof target === 'string' ? { path: target } : { stream: target }));
}

/** Kafka: every event to a topic, keyed by stream id (docs/sinks.md). Waits for the buffer to drain on completion. */
export function toKafka<T extends TimelineEvent>(options: KafkaSinkOptions): MonoTypeOperatorFunction<T> {
  return toSink(() => createKafkaSink({ log: quietLog, ...options }));
}

/** WebSocket: serves events to clients (127.0.0.1 unless `host` says otherwise); the server closes on completion. */
export function toWebSocket<T extends TimelineEvent>(options: WsSinkOptions): MonoTypeOperatorFunction<T> {
  return toSink(() => createWsSink({ log: quietLog, ...options }));
}

// A library does not write to the host program's stderr unless asked: pass `log` to see the sinks' lines.
const quietLog = { info: (): void => undefined, warn: (): void => undefined, error: (): void => undefined };
