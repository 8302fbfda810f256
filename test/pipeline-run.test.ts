// runPipeline's plumbing with fakes (pure logic, no media): ordering across a model stage that answers out
// of order, frame release and bounded pending frames, errors of one stream, a failed model stage, sink
// backpressure and stopping.
import { Observable } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { IngestError, InferenceError } from '../src/errors.js';
import { runPipeline } from '../src/pipeline/run.js';
import type { Detection, FaceCrop, Frame, FrameSource, TimelineEvent } from '../src/types.js';
import { EXPRESSIONS } from '../src/types.js';
import { assertValidEvents } from './helpers/schema.js';
import { memorySink } from './helpers/sinks.js';

const W = 64;
const H = 48;

/** A lossless source like the file source: at most `maxPending` frames out until released. */
function fakeSource(streamId: string, frames: number, opts: { maxPending?: number; failAfter?: number } = {}) {
  const maxPending = opts.maxPending ?? 4;
  let pending = 0;
  let maxSeen = 0;
  let released = 0;
  let pump: (() => void) | undefined;
  const source: FrameSource & { maxPendingSeen: () => number; released: () => number } = {
    streamId,
    info: async () => ({ streamId, source: `${streamId}.mp4`, kind: 'file', clock: 'media', width: W, height: H, fps: 10 }),
    skipped: () => 0,
    release: () => {
      pending--;
      released++;
      queueMicrotask(() => pump?.());
    },
    maxPendingSeen: () => maxSeen,
    released: () => released,
    frames: () =>
      new Observable<Frame>((sub) => {
        let next = 0;
        pump = () => {
          while (pending < maxPending && next < frames && !sub.closed) {
            if (opts.failAfter !== undefined && next === opts.failAfter) {
              sub.error(new IngestError('CS_ERR_TRUNCATED', `${streamId}.mp4`, `truncated video: ${streamId}.mp4 after ${next} frames`));
              return;
            }
            pending++;
            maxSeen = Math.max(maxSeen, pending);
            const frameId = next++;
            sub.next({ streamId, frameId, pts: frameId / 10, width: W, height: H, data: Buffer.alloc(W * H * 3, frameId % 256) });
          }
          if (next >= frames && !sub.closed) sub.complete();
        };
        setTimeout(() => pump?.(), 0);
        return () => {
          pump = undefined;
        };
      }),
  };
  return source;
}

/** One face per frame, drifting right; no face on frames listed in `gaps`. */
const fakeDetector = (gaps: Set<number> = new Set()) => ({
  detect: async (f: Frame): Promise<Detection[]> =>
    gaps.has(f.frameId) ? [] : [{ box: { x: 5 + f.frameId * 0.2, y: 5, width: 20, height: 20 }, score: 0.9 }],
});

/** Answers after a random delay, so batches finish out of order. */
function fakeModel(opts: { failOnCall?: number } = {}) {
  let calls = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  return {
    cropSize: 16,
    provider: 'fake',
    maxInFlight: () => maxInFlight,
    calls: () => calls,
    infer: async (crops: FaceCrop[]): Promise<Float32Array[]> => {
      const call = ++calls;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, Math.random() * 8));
      inFlight--;
      if (opts.failOnCall === call) throw new InferenceError('model exploded');
      return crops.map((c) => {
        const p = new Float32Array(EXPRESSIONS.length).fill(0.05);
        p[c.frameId < 10 ? 6 : 3] = 0.7;
        return p;
      });
    },
  };
}

function perTrackTimeOrder(events: TimelineEvent[]): void {
  const last = new Map<string, number>();
  const lastFrame = new Map<string, number>();
  for (const e of events) {
    if (e.type === 'face.observation') {
      expect(e.frameId).toBeGreaterThan(lastFrame.get(e.streamId) ?? -1);
      lastFrame.set(e.streamId, e.frameId);
    }
    if (!('trackId' in e)) continue;
    const k = `${e.streamId}/${e.trackId}`;
    expect(e.time).toBeGreaterThanOrEqual(last.get(k) ?? -Infinity);
    last.set(k, e.time);
  }
}

describe('runPipeline (fakes)', () => {
  it('keeps each stream in frame order through an out-of-order model stage, and releases every frame', async () => {
    const sources = [fakeSource('a', 40), fakeSource('b', 25), fakeSource('c', 30)];
    const model = fakeModel();
    const sink = memorySink();
    const summary = await runPipeline({ sources, detector: fakeDetector(), model, sinks: [sink], options: { batch: { maxBatch: 4, maxWaitMs: 2, maxInFlight: 3 } } });
    assertValidEvents(sink.events);
    perTrackTimeOrder(sink.events);
    expect(summary.streams.map((s) => [s.streamId, s.reason, s.frames])).toEqual([
      ['a', 'eof', 40],
      ['b', 'eof', 25],
      ['c', 'eof', 30],
    ]);
    for (const s of sources) {
      expect(s.released()).toBe(s === sources[0] ? 40 : s === sources[1] ? 25 : 30);
      expect(s.maxPendingSeen()).toBeLessThanOrEqual(4);
    }
    expect(model.maxInFlight()).toBeLessThanOrEqual(3);
    expect(summary.crops).toBe(95);
    // neutral for frames 0-9, then happiness: every stream's track has both segments.
    for (const id of ['a', 'b', 'c']) {
      const labels = sink.events.filter((e) => e.streamId === id && e.type === 'face.segment').map((e) => (e as { label: string }).label);
      expect(labels).toEqual(['neutral', 'happiness']);
    }
  });

  it('frames without faces still advance the tracker: a long gap ends the track, the face comes back as a new one', async () => {
    const gaps = new Set(Array.from({ length: 15 }, (_, i) => 10 + i)); // 1.5 s without a face at 10 fps
    const sink = memorySink();
    const src = fakeSource('a', 40);
    await runPipeline({ sources: [src], detector: fakeDetector(gaps), model: fakeModel(), sinks: [sink] });
    const trackEvents = sink.events.filter((e) => e.type === 'track.start' || e.type === 'track.end').map((e) => `${e.type}:${(e as { trackId: string }).trackId}:${'reason' in e ? e.reason : ''}`);
    expect(trackEvents).toEqual(['track.start:t1:', 'track.end:t1:lost', 'track.start:t2:', 'track.end:t2:stream.end']);
    expect(src.released()).toBe(40);
  });

  it('a failing source ends its own stream with error; the others go on', async () => {
    const sink = memorySink();
    const bad = fakeSource('bad', 30, { failAfter: 12 });
    const summary = await runPipeline({ sources: [fakeSource('good', 30), bad], detector: fakeDetector(), model: fakeModel(), sinks: [sink] });
    assertValidEvents(sink.events);
    expect(summary.streams.map((s) => [s.streamId, s.reason, s.frames])).toEqual([
      ['good', 'eof', 30],
      ['bad', 'error', 12],
    ]);
    expect(summary.streams[1]!.error).toBeInstanceOf(IngestError);
    const badEnd = sink.events.filter((e) => e.streamId === 'bad').at(-1)!;
    expect(badEnd).toMatchObject({ type: 'stream.end', reason: 'error', error: 'truncated video: bad.mp4 after 12 frames' });
    expect(bad.released()).toBe(12);
  });

  it('a failed model stage ends every stream with the inference error', async () => {
    const sink = memorySink();
    const summary = await runPipeline({
      sources: [fakeSource('a', 50), fakeSource('b', 50)],
      detector: fakeDetector(),
      model: fakeModel({ failOnCall: 3 }),
      sinks: [sink],
      options: { batch: { maxBatch: 2, maxWaitMs: 1 } },
    });
    assertValidEvents(sink.events);
    expect(summary.streams.map((s) => s.reason)).toEqual(['error', 'error']);
    for (const s of summary.streams) expect(s.error).toBeInstanceOf(InferenceError);
    for (const id of ['a', 'b']) expect(sink.events.filter((e) => e.streamId === id).at(-1)).toMatchObject({ type: 'stream.end', error: 'model exploded' });
  });

  it('a slow sink holds frames back at the source instead of queueing them', async () => {
    const sink = memorySink();
    const slow = { ...sink, write: async (e: TimelineEvent) => new Promise<void>((r) => setTimeout(() => r(void sink.events.push(e)), 2)) };
    const src = fakeSource('a', 30, { maxPending: 3 });
    await runPipeline({ sources: [src], detector: fakeDetector(), model: fakeModel(), sinks: [slow] });
    expect(src.maxPendingSeen()).toBeLessThanOrEqual(3);
    expect(src.released()).toBe(30);
    expect(sink.events.at(-1)).toMatchObject({ type: 'stream.end', reason: 'eof', frames: 30 });
  });

  it('aborting stops every stream with reason stopped and a complete timeline', async () => {
    const sink = memorySink();
    const abort = new AbortController();
    const summary = await runPipeline({
      sources: [fakeSource('a', 10_000), fakeSource('b', 10_000)],
      detector: fakeDetector(),
      model: fakeModel(),
      sinks: [sink],
      signal: abort.signal,
      onProgress: (p) => {
        if (p.totalFrames === 20) abort.abort();
      },
    });
    assertValidEvents(sink.events);
    expect(summary.streams.map((s) => s.reason)).toEqual(['stopped', 'stopped']);
    for (const id of ['a', 'b']) {
      const mine = sink.events.filter((e) => e.streamId === id);
      expect(mine.at(-1)).toMatchObject({ type: 'stream.end', reason: 'stopped' });
      expect(mine.filter((e) => e.type === 'track.end')).toHaveLength(1);
    }
    expect(summary.frames).toBeLessThan(200);
  });
});
