// The pipeline end to end with the real ffmpeg, the real face detector and real ONNX models (the tiny test
// models unless CAFE_TEST_MODELS says otherwise): what comes out of shared videos and images.
import { join } from 'node:path';
import { Observable } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFileSource } from '../src/ingest/file-source.js';
import { loadExpressionModel, type ExpressionModel } from '../src/model/expression-model.js';
import { loadFaceDetector, type FaceDetector } from '../src/model/face-detector.js';
import { runPipeline } from '../src/pipeline/run.js';
import type { FaceObservationEvent, Frame, FrameSource, StreamEndEvent, TimelineEvent, TrackEndEvent } from '../src/types.js';
import { testModelsDir } from './helpers/models.js';
import { assertValidEvents } from './helpers/schema.js';
import { sharedPath } from './helpers/shared.js';
import { memorySink } from './helpers/sinks.js';
import { makeMidStreamTruncatedVideo, makeStillVideo, makeTwoFaceVideo, tempDir } from './helpers/videos.js';

let detector: FaceDetector;
let model: ExpressionModel;
const tmp = tempDir();

beforeAll(async () => {
  [detector, model] = await Promise.all([loadFaceDetector(), loadExpressionModel({ modelsDir: await testModelsDir(), device: 'cpu' })]);
});
afterAll(async () => {
  detector?.close();
  await model?.close();
  tmp.cleanup();
});

/** Wraps a source to check that every frame it lets out comes back exactly once. */
function counted(source: FrameSource): FrameSource & { emitted: () => number; released: () => number } {
  let emitted = 0;
  let released = 0;
  const seen = new Set<object>();
  return {
    streamId: source.streamId,
    info: () => source.info(),
    skipped: () => source.skipped(),
    frames: () =>
      new Observable<Frame>((sub) =>
        source.frames().subscribe({
          next: (f) => {
            emitted++;
            sub.next(f);
          },
          error: (e: unknown) => sub.error(e),
          complete: () => sub.complete(),
        }),
      ),
    release: (f) => {
      if (seen.has(f)) throw new Error(`frame ${f.frameId} released twice`);
      seen.add(f);
      released++;
      source.release(f);
    },
    emitted: () => emitted,
    released: () => released,
  };
}

async function analyse(...sources: FrameSource[]): Promise<{ events: TimelineEvent[]; summary: Awaited<ReturnType<typeof runPipeline>> }> {
  const sink = memorySink();
  const summary = await runPipeline({ sources, detector, model, sinks: [sink], options: { batch: { maxBatch: 8, maxWaitMs: 20 } } });
  assertValidEvents(sink.events);
  return { events: sink.events, summary };
}

const ofType = <T extends TimelineEvent['type']>(events: TimelineEvent[], type: T): Extract<TimelineEvent, { type: T }>[] =>
  events.filter((e): e is Extract<TimelineEvent, { type: T }> => e.type === type);

function expectTrackEventsInTimeOrder(events: TimelineEvent[]): void {
  const last = new Map<string, number>();
  for (const e of events) {
    if (!('trackId' in e)) continue;
    const key = `${e.streamId}/${e.trackId}`;
    expect(e.time, `${key} ${e.type}`).toBeGreaterThanOrEqual(last.get(key) ?? -Infinity);
    last.set(key, e.time);
  }
}

describe('runPipeline on real media', () => {
  it('two faces side by side: exactly two stable tracks, the left one stays left', async () => {
    const video = await makeTwoFaceVideo(join(tmp.dir, 'two.mp4'));
    const source = counted(createFileSource({ path: video, streamId: 'two', maxPending: 16 }));
    const { events } = await analyse(source);

    const starts = ofType(events, 'track.start');
    // On failure, say what the tracks were: id, first box, life span, why it ended.
    const story = JSON.stringify(
      ofType(events, 'track.end').map((e) => ({ id: e.trackId, start: e.start, end: e.end, reason: e.reason, box: starts.find((s) => s.trackId === e.trackId)?.box })),
    );
    expect(starts.map((s) => s.trackId).sort(), story).toEqual(['t1', 't2']);
    const side = new Map<string, Set<string>>();
    for (const o of ofType(events, 'face.observation')) {
      const cx = o.box.x + o.box.width / 2;
      if (!side.has(o.trackId)) side.set(o.trackId, new Set());
      side.get(o.trackId)!.add(cx < 512 ? 'left' : 'right');
    }
    // Each track stays on its own half for the whole video: ids never swap.
    expect([...side.values()].map((s) => [...s]), story).toEqual(expect.arrayContaining([['left'], ['right']]));
    const ends = ofType(events, 'track.end');
    expect(ends).toHaveLength(2);
    for (const end of ends) {
      expect(end.reason).toBe('stream.end');
      expect(end.summary.duration, story).toBeGreaterThan(2.5); // one track for (almost) all of the 3 s each
    }
    const streamEnd = ofType(events, 'stream.end')[0]!;
    expect(streamEnd).toMatchObject({ reason: 'eof', frames: 75, tracks: 2 });
    expect(source.released()).toBe(source.emitted());
    expectTrackEventsInTimeOrder(events);
  });

  it('faces.jpg as a one-frame video: six tracks', async () => {
    const video = await makeStillVideo(sharedPath('data', 'images', 'faces.jpg'), join(tmp.dir, 'faces.mkv'));
    const { events } = await analyse(createFileSource({ path: video, streamId: 'faces' }));
    expect(ofType(events, 'track.start')).toHaveLength(6);
    expect(ofType(events, 'face.observation')).toHaveLength(6);
    expect(ofType(events, 'track.end').map((e) => e.summary.segments)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(ofType(events, 'stream.end')[0]).toMatchObject({ reason: 'eof', frames: 1, tracks: 6 });
  });

  it('white.png: a valid, empty timeline', async () => {
    const video = await makeStillVideo(sharedPath('data', 'images', 'white.png'), join(tmp.dir, 'white.mkv'), 3);
    const { events } = await analyse(createFileSource({ path: video, streamId: 'white' }));
    expect(events.map((e) => e.type)).toEqual(['stream.start', 'stream.end']);
    expect(events[1]).toMatchObject({ reason: 'eof', frames: 3, tracks: 0 });
  });

  it('many streams share one model stage; a broken stream ends in error while the others go on', async () => {
    const broken = await makeMidStreamTruncatedVideo(tmp.dir);
    const faces = await makeStillVideo(sharedPath('data', 'images', 'faces.jpg'), join(tmp.dir, 'faces5.mkv'), 5);
    const a = counted(createFileSource({ path: sharedPath('data', 'videos', 'd18.mp4'), streamId: 'a', maxPending: 8, sampleFps: 10 }));
    const b = counted(createFileSource({ path: faces, streamId: 'b', maxPending: 8 }));
    const c = counted(createFileSource({ path: broken, streamId: 'c', maxPending: 8 }));
    const { events, summary } = await analyse(a, b, c);

    const ends = new Map(ofType(events, 'stream.end').map((e): [string, StreamEndEvent] => [e.streamId, e]));
    expect(ends.get('a')).toMatchObject({ reason: 'eof', tracks: 1 });
    expect(ends.get('b')).toMatchObject({ reason: 'eof', frames: 5, tracks: 6 });
    const cEnd = ends.get('c')!;
    expect(cEnd.reason).toBe('error');
    expect(cEnd.error).toMatch(/truncated/);
    // The frames before the damage were analysed, and their track was closed before the stream.end.
    expect(cEnd.frames).toBeGreaterThan(10);
    const cEvents = events.filter((e) => e.streamId === 'c');
    expect(cEvents[cEvents.length - 1]!.type).toBe('stream.end');
    expect(cEvents.filter((e): e is TrackEndEvent => e.type === 'track.end').map((e) => e.reason)).toEqual(['stream.end']);
    // One model stage for all three: batches mix streams, and fewer calls than crops.
    expect(summary.batches).toBeLessThan(summary.crops);
    expect(summary.streams.map((s) => s.reason)).toEqual(['eof', 'eof', 'error']);
    for (const s of [a, b, c]) expect(s.released()).toBe(s.emitted());
    expect(ofType(events, 'face.observation').filter((o: FaceObservationEvent) => o.streamId === 'a').length).toBe(ends.get('a')!.frames);
    expectTrackEventsInTimeOrder(events);
  });
});
