// Batching: items (face crops from every stream) → calls of up to `maxBatch` items, at most `maxInFlight`
// calls running at once.
//
// Why not bufferTime + mergeMap: bufferTime closes batches on its clock whether or not a call slot is free, and
// mergeMap parks the surplus in an unbounded array. Here one queue holds the waiting items; a call starts
// when a slot is free AND (the queue holds a full batch OR its oldest item has waited `maxWaitMs` OR the
// source has completed). While every slot is busy, items keep queueing and leave as full batches when a slot
// frees, which is exactly when batching pays. The queue is bounded by the sources (they pause until their
// frames are released, i.e. until these calls return); `maxQueued` turns a broken bound into a loud error
// instead of silent growth.
import { Observable, type ObservableInput, type OperatorFunction, type SchedulerLike, type Subscription, asyncScheduler, from } from 'rxjs';
import type { BatchOptions } from './options.js';
import { batchOptionsSchema } from './options.js';

export class BatchQueueOverflowError extends RangeError {
  constructor(limit: number) {
    super(`batch queue over its bound of ${limit} items: a source is not waiting for its frames to be released`);
    this.name = 'BatchQueueOverflowError';
  }
}

export interface BatchStats {
  /** items waiting for a call. */
  queued: number;
  inFlight: number;
  calls: number;
  items: number;
}

export interface BatchCallOptions extends Partial<BatchOptions> {
  /** timers run on it; a TestScheduler makes the deadline testable without real time. */
  scheduler?: SchedulerLike;
  /** sampled after every change, for metrics. */
  onStats?: (stats: BatchStats) => void;
}

/** Groups items into batches and runs `call` on each, honouring the size, deadline and in-flight bounds. */
export function batchCalls<T, R>(call: (batch: T[]) => ObservableInput<R>, options: BatchCallOptions = {}): OperatorFunction<T, R> {
  const { maxBatch, maxWaitMs, maxInFlight, maxQueued } = batchOptionsSchema.parse({
    ...(options.maxBatch === undefined ? {} : { maxBatch: options.maxBatch }),
    ...(options.maxWaitMs === undefined ? {} : { maxWaitMs: options.maxWaitMs }),
    ...(options.maxInFlight === undefined ? {} : { maxInFlight: options.maxInFlight }),
    ...(options.maxQueued === undefined ? {} : { maxQueued: options.maxQueued }),
  });
  const scheduler = options.scheduler ?? asyncScheduler;

  return (source) =>
    new Observable<R>((subscriber) => {
      const queue: T[] = [];
      const arrivals: number[] = [];
      const calls = new Set<Subscription>();
      let inFlight = 0;
      let callCount = 0;
      let itemCount = 0;
      let sourceDone = false;
      let timer: Subscription | undefined;
      let timerDue = Infinity;

      const report = (): void => options.onStats?.({ queued: queue.length, inFlight, calls: callCount, items: itemCount });

      const dispatch = (): void => {
        while (inFlight < maxInFlight && queue.length > 0) {
          const due = arrivals[0]! + maxWaitMs;
          if (!(queue.length >= maxBatch || sourceDone || scheduler.now() >= due)) break;
          const batch = queue.splice(0, maxBatch);
          arrivals.splice(0, batch.length);
          inFlight++;
          callCount++;
          itemCount += batch.length;
          let done = false;
          let sub: Subscription | undefined;
          const finish = (): void => {
            if (done) return;
            done = true;
            inFlight--;
            if (sub !== undefined) calls.delete(sub);
            dispatch();
          };
          // A synchronous call may complete inside subscribe(), before `sub` exists: then there is nothing to keep.
          sub = from(call(batch)).subscribe({
            next: (r) => subscriber.next(r),
            error: (e: unknown) => subscriber.error(e),
            complete: finish,
          });
          if (!done) calls.add(sub);
        }
        if (subscriber.closed) return;
        arm();
        report();
        if (sourceDone && queue.length === 0 && inFlight === 0) subscriber.complete();
      };

      // One timer, for the oldest waiting item's deadline, only while a slot could take it.
      const arm = (): void => {
        const due = queue.length > 0 && inFlight < maxInFlight ? arrivals[0]! + maxWaitMs : Infinity;
        if (due === timerDue) return;
        timer?.unsubscribe();
        timer = undefined;
        timerDue = due;
        if (due === Infinity) return;
        timer = scheduler.schedule(() => {
          timer = undefined;
          timerDue = Infinity;
          dispatch();
        }, Math.max(0, due - scheduler.now()));
      };

      const upstream = source.subscribe({
        next: (item) => {
          if (queue.length >= maxQueued) {
            subscriber.error(new BatchQueueOverflowError(maxQueued));
            return;
          }
          queue.push(item);
          arrivals.push(scheduler.now());
          dispatch();
        },
        error: (e: unknown) => subscriber.error(e),
        complete: () => {
          sourceDone = true;
          dispatch();
        },
      });

      return () => {
        upstream.unsubscribe();
        timer?.unsubscribe();
        for (const c of calls) c.unsubscribe();
        calls.clear();
      };
    });
}
