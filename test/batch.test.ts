import { Subject, of } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { BatchQueueOverflowError, batchCalls } from '../src/pipeline/batch.js';

const newScheduler = (): TestScheduler => new TestScheduler((actual, expected) => expect(actual).toEqual(expected));

describe('batchCalls', () => {
  it('closes a batch when it is full (marbles)', () => {
    const ts = newScheduler();
    ts.run(({ hot, expectObservable }) => {
      const src = hot('  a-b-c-d-e-f-g-|');
      const out = src.pipe(batchCalls((b: string[]) => of(b.join('')), { maxBatch: 3, maxWaitMs: 1000, scheduler: ts }));
      // Full batches leave on their third item; the remainder leaves when the source completes.
      expectObservable(out).toBe('----x-----y---(z|)', { x: 'abc', y: 'def', z: 'g' });
    });
  });

  it('closes a batch when its oldest item has waited maxWaitMs (marbles)', () => {
    const ts = newScheduler();
    ts.run(({ hot, expectObservable }) => {
      const src = hot('  a-b 10ms c 20ms -|');
      const out = src.pipe(batchCalls((b: string[]) => of(b.join('')), { maxBatch: 10, maxWaitMs: 5, scheduler: ts }));
      // a arrives at 0: the batch [a, b] closes at 5; c arrives at 13 and leaves alone at 18.
      expectObservable(out).toBe('-----x 12ms y 16ms |', { x: 'ab', y: 'c' });
    });
  });

  it('never runs more than maxInFlight calls and refills with full batches as calls return', () => {
    const running: { batch: number[]; done: Subject<number[]> }[] = [];
    let maxRunning = 0;
    let nowRunning = 0;
    const results: number[][] = [];
    const input = new Subject<number>();
    input
      .pipe(
        batchCalls(
          (batch: number[]) => {
            const done = new Subject<number[]>();
            running.push({ batch, done });
            maxRunning = Math.max(maxRunning, ++nowRunning);
            return done;
          },
          { maxBatch: 4, maxWaitMs: 0, maxInFlight: 2 },
        ),
      )
      .subscribe((r) => results.push(r));

    // maxWaitMs 0: the first items leave at once, one call each, until both slots are busy.
    for (let i = 0; i < 12; i++) input.next(i);
    expect(running.map((r) => r.batch)).toEqual([[0], [1]]);
    const finish = (k: number): void => {
      const r = running[k]!;
      nowRunning--;
      r.done.next(r.batch);
      r.done.complete();
    };
    finish(0);
    // The freed slot takes a full batch of the oldest waiting items.
    expect(running.map((r) => r.batch)).toEqual([[0], [1], [2, 3, 4, 5]]);
    finish(1);
    finish(2);
    expect(running.map((r) => r.batch)).toEqual([[0], [1], [2, 3, 4, 5], [6, 7, 8, 9], [10, 11]]);
    expect(maxRunning).toBe(2);
    finish(3);
    finish(4);
    expect(results.flat()).toEqual(Array.from({ length: 12 }, (_, i) => i));
  });

  it('fails loudly instead of queueing past maxQueued', () => {
    const input = new Subject<number>();
    let error: unknown;
    input
      .pipe(batchCalls(() => new Subject<number>(), { maxBatch: 1, maxWaitMs: 0, maxInFlight: 1, maxQueued: 3 }))
      .subscribe({ error: (e: unknown) => (error = e) });
    for (let i = 0; i < 4; i++) input.next(i); // 1 in flight + 3 queued
    expect(error).toBeUndefined();
    input.next(4);
    expect(error).toBeInstanceOf(BatchQueueOverflowError);
  });

  it('completes only after the last call returns', () => {
    const input = new Subject<number>();
    const call = new Subject<string>();
    let completed = false;
    input.pipe(batchCalls(() => call, { maxBatch: 2, maxWaitMs: 1000 })).subscribe({ complete: () => (completed = true) });
    input.next(1);
    input.complete(); // flushes [1] at once
    expect(completed).toBe(false);
    call.next('r');
    call.complete();
    expect(completed).toBe(true);
  });

  it('passes a failed call on as an error', () => {
    const ts = newScheduler();
    ts.run(({ hot, cold, expectObservable }) => {
      const src = hot('a|');
      const out = src.pipe(batchCalls(() => cold('--#', undefined, new Error('boom')), { maxBatch: 1, scheduler: ts }));
      expectObservable(out).toBe('--#', undefined, new Error('boom'));
    });
  });
});
