// The sink operators and readers of the public API with real sinks: toJsonl writes every event in order and
// completes after the file is closed; toWebSocket → fromWebSocket round-trips typed events (resuming with
// `since`); toAsyncIterable bounds its buffer with the stated policy.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Subject, from, lastValueFrom, toArray } from 'rxjs';
import { afterAll, describe, expect, it } from 'vitest';
import { SinkError, type TimelineEvent, fromWebSocket, toAsyncIterable, toJsonl, toWebSocket } from '../src/index.js';
import { freePort } from './helpers/rtsp.js';
import { syntheticEvents } from './helpers/synthetic-events.js';
import { tempDir } from './helpers/videos.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('sink operators', () => {
  it('toJsonl: every event passes through in order and is in the file when the stream completes', async () => {
    const events = syntheticEvents({ streams: 2, tracksPerStream: 2, observationsPerTrack: 5 });
    const path = join(tmp.dir, 'events.jsonl');
    const passed = await lastValueFrom(from(events).pipe(toJsonl(path), toArray()));
    expect(passed).toEqual(events);
    expect(readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual(events);
  });

  it('toJsonl: a file that cannot be opened is a SinkError on the stream', async () => {
    const err = await lastValueFrom(from(syntheticEvents()).pipe(toJsonl(join(tmp.dir, 'no', 'such', 'dir.jsonl')))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SinkError);
  });

  it('toWebSocket → fromWebSocket: the reader gets the typed events after `since`', async () => {
    const port = await freePort();
    const [first, ...rest] = syntheticEvents({ streams: 1, tracksPerStream: 2, observationsPerTrack: 4 });
    const source = new Subject<TimelineEvent>();
    const written: TimelineEvent[] = [];
    const server = source.pipe(toWebSocket({ port, host: '127.0.0.1' })).subscribe((e) => written.push(e));
    try {
      for (const e of [first!, ...rest]) source.next(e);
      await new Promise<void>((r) => {
        const t = setInterval(() => written.length === rest.length + 1 && (clearInterval(t), r()), 20);
      });
      const got: TimelineEvent[] = [];
      for await (const e of fromWebSocket(`ws://127.0.0.1:${port}/`, { since: first!.id })) {
        got.push(e);
        if (got.length === rest.length) break;
      }
      expect(got).toEqual(rest);
    } finally {
      server.unsubscribe();
    }
  });
});

describe('toAsyncIterable', () => {
  it("overflow 'error' ends the iteration with a SinkError once the consumer is bufferSize behind", async () => {
    const it = toAsyncIterable(from([1, 2, 3, 4, 5]), { bufferSize: 2 })[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ value: 1, done: false });
    expect(await it.next()).toEqual({ value: 2, done: false });
    await expect(it.next()).rejects.toThrow(SinkError);
  });

  it("overflow 'drop-oldest' keeps the newest bufferSize values", async () => {
    const got: number[] = [];
    for await (const v of toAsyncIterable(from([1, 2, 3, 4, 5]), { bufferSize: 2, overflow: 'drop-oldest' })) got.push(v);
    expect(got).toEqual([4, 5]);
  });
});
