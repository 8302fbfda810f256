// Decoding started before the pipeline takes the source (analyze() does this while the models load): the frames
// decoded meanwhile come first and in order, ffmpeg still stops at the source's window, an early end or error
// reaches the late subscriber, and cancel() stops it all. The real ffmpeg for the file; a scripted source for the
// orderings a file cannot be made to produce on cue.
import { Observable, Subject, take } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { IngestError } from '../src/errors.js';
import { createFileSource } from '../src/ingest/file-source.js';
import { prestart } from '../src/ingest/prestart.js';
import type { Frame, FrameSource, StreamInfo } from '../src/types.js';
import { sharedPath } from './helpers/shared.js';
import { drain } from './helpers/sources.js';
import { makeMidStreamTruncatedVideo, tempDir } from './helpers/videos.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const frameAt = (k: number): Frame => ({ streamId: 's', frameId: k, pts: k / 10, width: 1, height: 1, data: Buffer.alloc(3) });

/** A source whose frames() runs are Subjects the test drives; records subscriptions, releases and unsubscriptions. */
function scripted(): { source: FrameSource; runs: Subject<Frame>[]; released: Frame[]; unsubscribed: number[] } {
  const runs: Subject<Frame>[] = [];
  const released: Frame[] = [];
  const unsubscribed: number[] = [];
  const source: FrameSource = {
    streamId: 's',
    info: async (): Promise<StreamInfo> => ({ streamId: 's', source: 's', kind: 'file', clock: 'media', width: 1, height: 1 }),
    skipped: () => 0,
    release: (f) => void released.push(f),
    frames: () =>
      new Observable<Frame>((sub) => {
        const k = runs.length;
        const run = new Subject<Frame>();
        runs.push(run);
        const s = run.subscribe(sub);
        return () => {
          s.unsubscribe();
          unsubscribed.push(k);
        };
      }),
  };
  return { source, runs, released, unsubscribed };
}

describe('prestart with the real ffmpeg', () => {
  it('frames decoded before the subscription come first, in order: the same frames as the source alone', async () => {
    const path = sharedPath('data', 'videos', 'd0.mp4');
    const plain = await drain(createFileSource({ path, sampleFps: 5 }));
    const early = prestart(createFileSource({ path, sampleFps: 5, maxPending: 4 }));
    await sleep(1500); // ffmpeg runs meanwhile, up to the window of 4 unreleased frames
    const got: Frame[] = [];
    const sub = early.frames().subscribe((f) => got.push(f));
    // the window's frames are handed over in the subscribe call itself; no more were decoded than the window
    expect(got).toHaveLength(4);
    sub.unsubscribe();
    early.cancel();

    const again = prestart(createFileSource({ path, sampleFps: 5 }));
    await sleep(300);
    const all = await drain(again);
    expect(all.error).toBeUndefined();
    expect(all.frames.map((f) => f.pts)).toEqual(plain.frames.map((f) => f.pts));
    expect(all.frames.length).toBeGreaterThan(10);
    expect(Buffer.compare(all.frames[7]!.data, plain.frames[7]!.data)).toBe(0);
  });

  it('a file that ends in error before anyone subscribes: its frames, then its error', async () => {
    const tmp = tempDir();
    try {
      const broken = await makeMidStreamTruncatedVideo(tmp.dir);
      const plain = await drain(createFileSource({ path: broken }));
      expect(plain.error).toBeInstanceOf(IngestError);
      const early = prestart(createFileSource({ path: broken, maxPending: 1000 }));
      await sleep(2000);
      const late = await drain(early);
      expect(late.frames.length).toBe(plain.frames.length);
      expect(late.error).toBeInstanceOf(IngestError);
    } finally {
      tmp.cleanup();
    }
  });
});

describe('prestart, the orderings', () => {
  it('buffers before the subscription, then passes frames straight through', () => {
    const { source, runs } = scripted();
    const early = prestart(source);
    expect(runs).toHaveLength(1); // decoding starts at once
    runs[0]!.next(frameAt(0));
    runs[0]!.next(frameAt(1));
    const got: number[] = [];
    early.frames().subscribe((f) => got.push(f.frameId));
    expect(got).toEqual([0, 1]);
    runs[0]!.next(frameAt(2));
    expect(got).toEqual([0, 1, 2]);
  });

  it('an end or an error before the subscription is delivered after the waiting frames', () => {
    for (const end of ['complete', 'error'] as const) {
      const { source, runs } = scripted();
      const early = prestart(source);
      runs[0]!.next(frameAt(0));
      if (end === 'complete') runs[0]!.complete();
      else runs[0]!.error(new IngestError('CS_ERR_TRUNCATED', 's', 'cut short'));
      const seen: string[] = [];
      early.frames().subscribe({ next: (f) => seen.push(`f${f.frameId}`), complete: () => seen.push('complete'), error: (e: Error) => seen.push(`error ${e.message}`) });
      expect(seen).toEqual(['f0', end === 'complete' ? 'complete' : 'error cut short']);
    }
  });

  it('cancel() before anyone takes the frames stops decoding and releases what waited', () => {
    const { source, runs, released, unsubscribed } = scripted();
    const early = prestart(source);
    runs[0]!.next(frameAt(0));
    runs[0]!.next(frameAt(1));
    early.cancel();
    expect(unsubscribed).toEqual([0]);
    expect(released.map((f) => f.frameId)).toEqual([0, 1]);
    // a later subscriber starts a decode of its own
    const got: number[] = [];
    early.frames().subscribe((f) => got.push(f.frameId));
    expect(runs).toHaveLength(2);
    runs[1]!.next(frameAt(0));
    expect(got).toEqual([0]);
  });

  it('the subscriber leaving stops the early decode; a second subscriber gets a fresh one', () => {
    const { source, runs, released, unsubscribed } = scripted();
    const early = prestart(source);
    runs[0]!.next(frameAt(0));
    runs[0]!.next(frameAt(1));
    runs[0]!.next(frameAt(2));
    // takes one frame and leaves inside the hand-over: the two it never saw are released
    early.frames().pipe(take(1)).subscribe();
    const first = early.frames().subscribe(() => undefined);
    expect(unsubscribed).toContain(0);
    expect(released.map((f) => f.frameId)).toEqual([1, 2]);
    expect(runs).toHaveLength(2);
    first.unsubscribe();
    expect(unsubscribed).toEqual([0, 1]);
  });
});
