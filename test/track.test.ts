import { describe, expect, it } from 'vitest';
import { iou } from '../src/geometry.js';
import { FaceTracker } from '../src/pipeline/track.js';
import type { Box, Detection } from '../src/types.js';

const FPS = 25;
const det = (x: number, y: number, size = 100): Detection => ({ box: { x, y, width: size, height: size }, score: 0.9 });
const sameBox = (a: Box, b: Box): boolean => a.x === b.x && a.y === b.y && a.width === b.width;

/** Deterministic shuffle so the tracker can't lean on detection order. */
function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('FaceTracker (SORT-style)', () => {
  it('keeps ids on two faces that cross, whatever order the detections come in', () => {
    const tracker = new FaceTracker();
    const idsOfA = new Set<string>();
    const idsOfB = new Set<string>();
    for (let f = 0; f < 50; f++) {
      const a = det(20 + f * 12, 100);
      const b = det(620 - f * 12, 130);
      const { faces } = tracker.update(f / FPS, shuffled([a, b], f + 1));
      for (const face of faces) {
        if (sameBox(face.box, a.box)) idsOfA.add(face.trackId);
        else if (sameBox(face.box, b.box)) idsOfB.add(face.trackId);
      }
    }
    // One id each for the whole run, and not the same one.
    expect(idsOfA.size).toBe(1);
    expect(idsOfB.size).toBe(1);
    expect(new Set([...idsOfA, ...idsOfB])).toEqual(new Set(['t1', 't2']));
  });

  it('keeps ids when the face behind is hidden while they cross', () => {
    const tracker = new FaceTracker();
    const idsOfA = new Set<string>();
    const idsOfB = new Set<string>();
    let hiddenFrames = 0;
    for (let f = 0; f < 50; f++) {
      const a = det(20 + f * 12, 100);
      const b = det(620 - f * 12, 110);
      const overlapping = iou(a.box, b.box) > 0.2;
      if (overlapping) hiddenFrames++;
      const { faces, ended } = tracker.update(f / FPS, overlapping ? [a] : shuffled([a, b], f));
      expect(ended).toEqual([]);
      for (const face of faces) {
        if (sameBox(face.box, a.box)) idsOfA.add(face.trackId);
        else if (sameBox(face.box, b.box)) idsOfB.add(face.trackId);
      }
    }
    expect(hiddenFrames).toBeGreaterThan(3);
    expect([...idsOfA]).toEqual(['t1']);
    expect([...idsOfB]).toEqual(['t2']);
  });

  it('bridges a gap shorter than maxLostSeconds and ends the track after a longer one', () => {
    const tracker = new FaceTracker({ maxLostSeconds: 1 });
    const seen: string[] = [];
    const ended: { trackId: string; lastSeen: number; reason: string; at: number }[] = [];
    const step = (f: number, present: boolean): void => {
      const r = tracker.update(f / FPS, present ? [det(200, 200)] : []);
      seen.push(...r.faces.map((x) => x.trackId));
      ended.push(...r.ended.map((e) => ({ ...e, at: f / FPS })));
    };
    for (let f = 0; f < 10; f++) step(f, true);
    for (let f = 10; f < 30; f++) step(f, false); // 0.8 s unseen: bridged
    for (let f = 30; f < 40; f++) step(f, true);
    expect(new Set(seen)).toEqual(new Set(['t1']));
    expect(ended).toEqual([]);
    for (let f = 40; f < 80; f++) step(f, false); // 1.6 s unseen: lost
    expect(ended).toHaveLength(1);
    expect(ended[0]).toMatchObject({ trackId: 't1', lastSeen: 39 / FPS, reason: 'lost' });
    // It ends on the first frame past the limit, not before and not long after.
    expect(ended[0]!.at - ended[0]!.lastSeen).toBeGreaterThan(1);
    expect(ended[0]!.at - ended[0]!.lastSeen).toBeLessThanOrEqual(1 + 1 / FPS + 1e-9);
    for (let f = 80; f < 85; f++) step(f, true);
    expect(seen[seen.length - 1]).toBe('t2');
  });

  it('reports first-frame faces at once and later ones after minHits, never a one-frame blip', () => {
    const tracker = new FaceTracker({ minHits: 2 });
    const first = tracker.update(0, [det(10, 10), det(300, 10)]);
    expect(first.faces.map((f) => [f.trackId, f.isNew])).toEqual([
      ['t1', true],
      ['t2', true],
    ]);
    // A blip on one frame only never gets an id.
    const blip = tracker.update(0.04, [det(10, 10), det(300, 10), det(600, 400, 50)]);
    expect(blip.faces.map((f) => f.trackId)).toEqual(['t1', 't2']);
    tracker.update(0.08, [det(10, 10), det(300, 10)]);
    // A real newcomer: reported from its second detection on, with the next free id.
    expect(tracker.update(0.12, [det(10, 10), det(300, 10), det(600, 300, 60)]).faces).toHaveLength(2);
    const second = tracker.update(0.16, [det(10, 10), det(300, 10), det(602, 300, 60)]);
    expect(second.faces.map((f) => [f.trackId, f.isNew])).toEqual([
      ['t1', false],
      ['t2', false],
      ['t3', true],
    ]);
  });

  it('never joins a detection of a very different size or far away to a track', () => {
    const tracker = new FaceTracker({ minHits: 1 });
    tracker.update(0, [det(100, 100, 100)]);
    const far = tracker.update(0.04, [det(900, 600, 100)]);
    expect(far.faces.map((f) => f.trackId)).toEqual(['t2']);
    const tiny = tracker.update(0.08, [det(130, 130, 30), det(900, 600, 100)]);
    expect(tiny.faces.map((f) => f.trackId)).toEqual(['t2', 't3']);
  });

  it('ends every live track with reason stream.end on finish', () => {
    const tracker = new FaceTracker();
    tracker.update(0, [det(10, 10), det(300, 10)]);
    tracker.update(0.04, [det(12, 10)]);
    expect(tracker.finish()).toEqual([
      { trackId: 't1', lastSeen: 0.04, reason: 'stream.end' },
      { trackId: 't2', lastSeen: 0, reason: 'stream.end' },
    ]);
    expect(tracker.activeTrackIds()).toEqual([]);
  });
});
