// Detection interval: the detector runs on every N-th frame and the tracker carries the boxes in between.
// The schedule's rules on synthetic frames (pure logic), then the real thing: a two-face video through the real
// detector (on its worker thread) and the pipeline, where tracks must be neither lost nor swapped.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFileSource } from '../src/ingest/file-source.js';
import { loadFaceDetectorThread } from '../src/model/detector-thread.js';
import type { FaceDetector } from '../src/model/face-detector.js';
import { loadExpressionModel, type ExpressionModel } from '../src/model/expression-model.js';
import { DetectionSchedule } from '../src/pipeline/detect-track.js';
import { runPipeline } from '../src/pipeline/run.js';
import type { Box, Detection, FaceObservationEvent, Frame, TimelineEvent } from '../src/types.js';
import { testModelsDir } from './helpers/models.js';
import { assertValidEvents } from './helpers/schema.js';
import { memorySink } from './helpers/sinks.js';
import { makeTwoFaceVideo, tempDir } from './helpers/videos.js';

const W = 320;
const H = 240;
/** A grey frame with optional bright squares (to make the motion grid see something). */
function frame(i: number, squares: Box[] = []): Frame {
  const data = Buffer.alloc(W * H * 3, 90);
  for (const s of squares) {
    for (let y = s.y; y < s.y + s.height; y++) data.fill(230, (y * W + s.x) * 3, (y * W + s.x + s.width) * 3);
  }
  return { streamId: 's', frameId: i, pts: i / 25, width: W, height: H, data };
}
const face = (x: number, y = 60, size = 60): Detection => ({ box: { x, y, width: size, height: size }, score: 0.9 });

/** Runs the schedule over n frames; `detections(i)` is what the detector would say on frame i. */
function replay(schedule: DetectionSchedule, n: number, detections: (i: number) => Detection[], squares: (i: number) => Box[] = () => []) {
  const detectedOn: number[] = [];
  const faces: { trackId: string; box: Box }[][] = [];
  for (let i = 0; i < n; i++) {
    const f = frame(i, squares(i));
    const plan = schedule.plan(f);
    if (plan.detect) {
      detectedOn.push(i);
      faces.push(schedule.detected(f, detections(i)).faces);
    } else faces.push(plan.faces);
  }
  return { detectedOn, faces };
}

describe('DetectionSchedule', () => {
  it('interval 1 detects every frame', () => {
    const { detectedOn } = replay(new DetectionSchedule({ interval: 1 }), 10, () => [face(100)]);
    expect(detectedOn).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('a still face: the detector runs on every N-th frame once the track is confirmed, and the face is reported on every frame', () => {
    const { detectedOn, faces } = replay(new DetectionSchedule({ interval: 4 }), 14, () => [face(100)]);
    // frame 0 reports the face at once (first frame of a stream); frame 1 gives its track a velocity; then every 4th
    expect(detectedOn).toEqual([0, 1, 5, 9, 13]);
    expect(faces.every((fs) => fs.length === 1 && fs[0]!.trackId === 't1')).toBe(true);
  });

  it('carries a moving face at its velocity between detections', () => {
    // 2 px per frame to the right: slow enough that no early re-detection is needed
    const { detectedOn, faces } = replay(new DetectionSchedule({ interval: 3 }, { velocityGain: 1 }), 10, (i) => [face(100 + 2 * i)]);
    expect(detectedOn).toEqual([0, 1, 4, 7]);
    // from the second detection on the velocity is known: carried boxes land where the face is
    for (const i of [2, 3, 5, 6, 8, 9]) expect(faces[i]![0]!.box.x).toBeCloseTo(100 + 2 * i, 0);
  });

  it('a new face makes the next frame a detection frame (its confirming hit), not N frames later', () => {
    const { detectedOn, faces } = replay(new DetectionSchedule({ interval: 5 }), 13, (i) => (i < 6 ? [face(40)] : [face(40), face(200)]));
    // 0 and 1: the first face; 6: the new face's first hit; 7: its confirming hit (t2 reported); then 12
    expect(detectedOn).toEqual([0, 1, 6, 7, 12]);
    expect(faces[6]!.map((f) => f.trackId)).toEqual(['t1']);
    expect(faces[7]!.map((f) => f.trackId)).toEqual(['t1', 't2']);
    expect(faces[8]!.map((f) => f.trackId)).toEqual(['t1', 't2']);
  });

  it('re-detects early when the picture changes away from the faces (a face may have entered)', () => {
    const squares = (i: number): Box[] => (i >= 2 ? [{ x: 240, y: 150, width: 50, height: 50 }] : []);
    const squaresLater = (i: number): Box[] => (i >= 3 ? squares(i) : []);
    const { detectedOn } = replay(new DetectionSchedule({ interval: 6 }), 9, () => [face(40)], squaresLater);
    expect(detectedOn).toEqual([0, 1, 3]);
  });

  it('motion on the face itself does not trigger a detection', () => {
    const squares = (i: number): Box[] => (i % 2 === 0 ? [{ x: 50, y: 70, width: 40, height: 40 }] : []);
    const { detectedOn } = replay(new DetectionSchedule({ interval: 6 }), 14, () => [face(40)], squares);
    expect(detectedOn).toEqual([0, 1, 7, 13]);
  });

  it('in a crowd (4 faces or more) a body moving under its face is not a newcomer; under a lone face it still triggers', () => {
    const small = (x: number): Detection => ({ box: { x, y: 20, width: 30, height: 30 }, score: 0.9 });
    // a square flickering under the first face: shoulders of a talking person, 1.5 to 2.5 face heights below
    const body = (i: number): Box[] => (i >= 3 && i % 2 === 1 ? [{ x: 25, y: 80, width: 30, height: 30 }] : []);
    const crowd = replay(new DetectionSchedule({ interval: 6 }), 14, () => [small(20), small(90), small(160), small(230)], body);
    expect(crowd.detectedOn).toEqual([0, 1, 7, 13]);
    const alone = replay(new DetectionSchedule({ interval: 6 }), 14, () => [small(20)], body);
    expect(alone.detectedOn.length).toBeGreaterThan(4);
    expect(alone.detectedOn.slice(0, 3)).toEqual([0, 1, 3]);
  });

  it('re-detects early when a carried box has drifted by more than maxDrift face sizes', () => {
    // 15 px per frame = 0.25 face sizes a frame: past the 0.2 default after one carried frame
    const schedule = new DetectionSchedule({ interval: 6 }, { velocityGain: 1 });
    const { detectedOn } = replay(schedule, 6, (i) => [face(20 + 15 * i)]);
    // frame 1 measures the velocity; from then on every carried frame would drift too far
    expect(detectedOn).toEqual([0, 1, 2, 3, 4, 5]);
    expect(schedule.counts.early.drift).toBe(4);
    expect(schedule.counts.early.young).toBe(1);
  });
});

describe('DetectionSchedule hints for a tiling detector', () => {
  it('asks for a whole-frame scan on the first detection and then every scanSeconds of pts, and names where the tracks should be', () => {
    const schedule = new DetectionSchedule({ interval: 1, scanSeconds: 0.2 }, { velocityGain: 1 });
    const scans: number[] = [];
    const expected: Box[][] = [];
    for (let i = 0; i < 12; i++) {
      const f = frame(i); // pts i / 25
      expect(schedule.plan(f).detect).toBe(true);
      const h = schedule.hints(f);
      if (h.scan) scans.push(i);
      expected.push([...h.expected]);
      schedule.detected(f, i < 8 ? [face(100 + 2 * i)] : []);
    }
    expect(scans).toEqual([0, 5, 10]);
    expect(expected[0]).toEqual([]); // nothing tracked yet
    // from frame 2 on the face is expected where it is heading (2 px a frame), within a pixel
    for (const i of [2, 5, 7]) expect(expected[i]![0]!.x).toBeCloseTo(100 + 2 * i, 0);
    // a face the detector stops finding is still expected while its track lives (that is when looking again helps)
    expect(expected[9]).toHaveLength(1);
  });
});

describe('the detector on its worker thread', () => {
  it('a bad option fails the load with the same ConfigError as on the main thread, not a crash', async () => {
    await expect(loadFaceDetectorThread({ model: 'huge' as 'full' })).rejects.toMatchObject({ code: 'CS_ERR_CONFIG', message: expect.stringMatching(/short or full/) });
  });
});

describe('detection interval on a real two-face video', () => {
  let detector: FaceDetector;
  let model: ExpressionModel;
  const tmp = tempDir();
  beforeAll(async () => {
    [detector, model] = await Promise.all([loadFaceDetectorThread(), loadExpressionModel({ modelsDir: await testModelsDir(), device: 'cpu' })]);
  });
  afterAll(async () => {
    detector?.close();
    await model?.close();
    tmp.cleanup();
  });

  it('interval 5: two tracks for the whole video, never swapped, both faces on every frame, the detector on a minority of frames', async () => {
    const video = await makeTwoFaceVideo(join(tmp.dir, 'two.mp4'));
    let calls = 0;
    const counting = { name: detector.name, detect: (f: Frame) => (calls++, detector.detect(f)) };
    const sink = memorySink();
    const summary = await runPipeline({
      sources: [createFileSource({ path: video, streamId: 'two', maxPending: 16 })],
      detector: counting,
      model,
      sinks: [sink],
      options: { detection: { interval: 5 }, batch: { maxBatch: 8, maxWaitMs: 20 } },
    });
    const events: TimelineEvent[] = sink.events;
    assertValidEvents(events);
    expect(summary.frames).toBe(75);
    const obs = events.filter((e): e is FaceObservationEvent => e.type === 'face.observation');
    const side = new Map<string, Set<string>>();
    const perFrame = new Map<number, number>();
    for (const o of obs) {
      const s = side.get(o.trackId) ?? new Set<string>();
      s.add(o.box.x + o.box.width / 2 < 512 ? 'left' : 'right');
      side.set(o.trackId, s);
      perFrame.set(o.time, (perFrame.get(o.time) ?? 0) + 1);
    }
    expect(events.filter((e) => e.type === 'track.start').map((e) => (e as { trackId: string }).trackId)).toEqual(['t1', 't2']);
    expect([...side.values()].map((s) => [...s])).toEqual(expect.arrayContaining([['left'], ['right']]));
    expect(side.size).toBe(2);
    // both faces on every frame (the first frame reports both at once)
    expect(perFrame.size).toBe(75);
    expect([...perFrame.values()].every((n) => n === 2)).toBe(true);
    const ends = events.filter((e) => e.type === 'track.end') as { reason: string }[];
    expect(ends.map((e) => e.reason)).toEqual(['stream.end', 'stream.end']);
    expect(calls).toBeGreaterThanOrEqual(15);
    expect(calls).toBeLessThan(75 / 2);
  });
});
