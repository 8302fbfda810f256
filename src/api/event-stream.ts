// The Observable that analyze() and watch() return, which is also an async iterable.
//
// RxJS 7 Observables push and have no backpressure, so a `for await` bridge over `.subscribe` would have to
// buffer without bound (as rxjs 8's does). Here the producer hands events to a target whose `next` may return
// a promise: `.subscribe` never returns one (push, as RxJS users expect), the async iterator returns one while
// its buffer is at the high-water mark, and the pipeline waits on it, which pauses ffmpeg for files. So a slow
// `for await` body slows the analysis instead of filling memory, and breaking out of the loop tears everything
// down like unsubscribe does.
import { Observable } from 'rxjs';
import { SinkError } from '../errors.js';

/** Where a producer puts its values; `next` may ask it to wait. */
export interface PacedTarget<T> {
  next(value: T): void | Promise<void>;
  error(err: unknown): void;
  complete(): void;
}

/** Starts producing into `target`; returns the teardown (idempotent, called once the consumer leaves or it ends). */
export type Producer<T> = (target: PacedTarget<T>) => () => void;

const producers = new WeakMap<object, Producer<unknown>>();

/** A cold Observable; `for await` over it is paced (see above). */
export class EventStream<T> extends Observable<T> implements AsyncIterable<T> {
  readonly #highWaterMark: number;

  constructor(produce: Producer<T>, highWaterMark = 64) {
    super((subscriber) =>
      produce({
        next: (v) => subscriber.next(v),
        error: (e) => subscriber.error(e),
        complete: () => subscriber.complete(),
      }),
    );
    producers.set(this, produce as Producer<unknown>);
    this.#highWaterMark = highWaterMark;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return bufferedIterator(producers.get(this) as Producer<T>, { highWaterMark: this.#highWaterMark, overflow: 'wait' });
  }
}

/** The producer behind an EventStream (to wrap it without losing pacing). */
export function producerOf<T>(stream: EventStream<T>): Producer<T> {
  return producers.get(stream) as Producer<T>;
}

export interface AsyncIterableOptions {
  /** events held for a consumer that is behind; default 10 000. */
  bufferSize?: number;
  /**
   * when the buffer is full: 'error' (default) ends the iteration with a SinkError, 'drop-oldest' discards the
   * oldest held event. An EventStream iterated directly never overflows: it pauses the analysis instead.
   */
  overflow?: 'error' | 'drop-oldest';
}

/**
 * Any Observable (e.g. an EventStream after `.pipe(filter(…))`) as an async iterable with a bounded buffer.
 * Subscribes on the first `next()`; `break` / `return()` unsubscribes.
 */
export function toAsyncIterable<T>(source: Observable<T>, options: AsyncIterableOptions = {}): AsyncIterable<T> {
  const bufferSize = options.bufferSize ?? 10_000;
  if (!Number.isInteger(bufferSize) || bufferSize < 1) throw new RangeError(`bufferSize must be a positive integer, got ${bufferSize}`);
  const produce: Producer<T> = (target) => {
    const sub = source.subscribe({ next: (v) => void target.next(v), error: (e) => target.error(e), complete: () => target.complete() });
    return () => sub.unsubscribe();
  };
  return { [Symbol.asyncIterator]: () => bufferedIterator(produce, { highWaterMark: bufferSize, overflow: options.overflow ?? 'error' }) };
}

function bufferedIterator<T>(produce: Producer<T>, o: { highWaterMark: number; overflow: 'wait' | 'error' | 'drop-oldest' }): AsyncIterator<T> {
  const buffer: T[] = [];
  let ended: { error?: unknown } | undefined;
  let started = false;
  let finished = false;
  let teardown: (() => void) | undefined;
  let consumer: (() => void) | undefined;
  let producersWaiting: (() => void)[] = [];

  const wakeConsumer = (): void => {
    const c = consumer;
    consumer = undefined;
    c?.();
  };
  const wakeProducers = (): void => {
    const ps = producersWaiting;
    producersWaiting = [];
    for (const p of ps) p();
  };
  const finish = (): void => {
    if (finished) return;
    finished = true;
    buffer.length = 0;
    wakeProducers();
    teardown?.();
  };
  const end = (e: { error?: unknown }): void => {
    if (ended !== undefined) return;
    ended = e;
    wakeConsumer();
    wakeProducers();
  };

  const target: PacedTarget<T> = {
    next(value) {
      if (ended !== undefined || finished) return;
      if (buffer.length >= o.highWaterMark && o.overflow !== 'wait') {
        if (o.overflow === 'drop-oldest') buffer.shift();
        else {
          end({ error: new SinkError('async-iterator', `the consumer fell ${buffer.length} events behind (bufferSize); iterate the EventStream itself to pace the analysis, or raise bufferSize`) });
          return;
        }
      }
      buffer.push(value);
      wakeConsumer();
      if (o.overflow === 'wait' && buffer.length >= o.highWaterMark) return new Promise<void>((r) => producersWaiting.push(r));
    },
    error: (err) => end({ error: err }),
    complete: () => end({}),
  };

  return {
    async next(): Promise<IteratorResult<T>> {
      if (!started) {
        started = true;
        teardown = produce(target);
        if (finished) teardown();
      }
      for (;;) {
        if (finished) return { value: undefined, done: true };
        if (buffer.length > 0) {
          const value = buffer.shift()!;
          if (buffer.length < o.highWaterMark) wakeProducers();
          return { value, done: false };
        }
        if (ended !== undefined) {
          const { error } = ended;
          finish();
          if ('error' in ended && error !== undefined) throw error;
          return { value: undefined, done: true };
        }
        await new Promise<void>((r) => (consumer = r));
      }
    },
    async return(): Promise<IteratorResult<T>> {
      finish();
      return { value: undefined, done: true };
    },
  };
}
