import { describe, expect, it } from 'vitest';
import type { SmoothedFrame } from '../src/pipeline/messages.js';
import { StreamTimeline, TrackTimeline } from '../src/pipeline/timeline.js';
import type { Expression, FaceSegmentEvent, StreamInfo, TimelineEvent, TrackEndEvent } from '../src/types.js';
import { lean } from './helpers/expressions.js';

const FPS = 25;

/** Feeds a track one observation per frame following `script` ([label, seconds] runs); returns all its events. */
function play(script: [Expression, number][], minSegmentSeconds = 0.4): { events: (FaceSegmentEvent | TrackEndEvent)[]; emittedAt: number[] } {
  const t = new TrackTimeline('s', 't1', 0, { minSegmentSeconds });
  const events: (FaceSegmentEvent | TrackEndEvent)[] = [];
  const emittedAt: number[] = [];
  let f = 0;
  for (const [label, seconds] of script) {
    const n = Math.round(seconds * FPS);
    for (let i = 0; i < n; i++, f++) {
      for (const e of t.observe(f / FPS, label, lean(label))) {
        events.push(e);
        emittedAt.push(f / FPS);
      }
    }
  }
  const last = (f - 1) / FPS;
  events.push(...t.end(last, 'stream.end'));
  return { events, emittedAt };
}

const segments = (events: TimelineEvent[]): FaceSegmentEvent[] => events.filter((e): e is FaceSegmentEvent => e.type === 'face.segment');

describe('TrackTimeline segments', () => {
  it('gives one segment per label run, tiling the track', () => {
    const { events } = play([
      ['neutral', 1],
      ['happiness', 1],
      ['neutral', 1],
    ]);
    const segs = segments(events);
    expect(segs.map((s) => [s.label, s.start, s.end, s.observations])).toEqual([
      ['neutral', 0, 1, 25],
      ['happiness', 1, 2, 25],
      ['neutral', 2, 2.96, 25],
    ]);
    expect(segs[1]!.meanProbabilities.happiness).toBeCloseTo(0.8, 4);
    const end = events[events.length - 1] as TrackEndEvent;
    expect(end.type).toBe('track.end');
    // a third of the track smiling: the smile is what the track shows, though neutral has more seconds
    expect(end.summary).toMatchObject({ observations: 75, segments: 3, dominant: 'happiness', duration: 2.96 });
    expect(end.summary.labelDurations.neutral + end.summary.labelDurations.happiness).toBeCloseTo(2.96, 5);
  });

  it('keeps neutral dominant when an expression holds less than the expressive share', () => {
    const { events } = play([
      ['neutral', 2],
      ['happiness', 0.6],
      ['neutral', 2],
    ]);
    const end = events[events.length - 1] as TrackEndEvent;
    expect(end.summary.labelDurations.happiness).toBeGreaterThan(0.5); // 0.6 of 4.6 s: under the 15 % share
    expect(end.summary.dominant).toBe('neutral');
  });

  it('emits a segment once the next label has held for the minimum duration', () => {
    const { events, emittedAt } = play(
      [
        ['neutral', 1],
        ['happiness', 1],
      ],
      0.4,
    );
    expect(events[0]!.type).toBe('face.segment');
    expect(emittedAt[0]).toBeCloseTo(1.4, 5);
    // Its event time is when it was decided, never before its end.
    expect(events[0]!.time).toBeCloseTo(1.4, 5);
  });

  it('merges a run shorter than the minimum into the run before it', () => {
    const { events } = play([
      ['neutral', 1],
      ['surprise', 0.2],
      ['neutral', 1],
      ['happiness', 0.2],
    ]);
    const segs = segments(events);
    expect(segs.map((s) => [s.label, s.start, s.end, s.observations])).toEqual([['neutral', 0, 2.36, 60]]);
  });

  it('merges a short opening run into the run after it', () => {
    const { events } = play([
      ['anger', 0.2],
      ['happiness', 1],
    ]);
    expect(segments(events).map((s) => [s.label, s.start, s.end])).toEqual([['happiness', 0, 1.16]]);
  });

  it('gives a one-frame track one segment and its strongest class as dominant', () => {
    const t = new TrackTimeline('s', 't9', 5, {});
    expect(t.observe(5, 'sadness', lean('sadness', 0.6))).toEqual([]);
    const out = t.end(5, 'stream.end');
    expect(out.map((e) => e.type)).toEqual(['face.segment', 'track.end']);
    expect(out[0]).toMatchObject({ label: 'sadness', start: 5, end: 5, observations: 1 });
    expect((out[1] as TrackEndEvent).summary).toMatchObject({ dominant: 'sadness', duration: 0, segments: 1 });
  });

  it('keeps every event of a track in time order under a flickery script', () => {
    const labels: Expression[] = ['neutral', 'happiness', 'surprise', 'neutral', 'fear'];
    const script: [Expression, number][] = Array.from({ length: 30 }, (_, i) => [labels[(i * 7) % 5]!, 0.04 * (1 + ((i * 13) % 20))]);
    const { events } = play(script, 0.3);
    for (let i = 1; i < events.length; i++) expect(events[i]!.time).toBeGreaterThanOrEqual(events[i - 1]!.time);
    const segs = segments(events);
    for (let i = 1; i < segs.length; i++) {
      expect(segs[i]!.start).toBe(segs[i - 1]!.end); // no gaps, no overlaps
      expect(segs[i]!.label).not.toBe(segs[i - 1]!.label);
    }
    // Only the last segment may be short (the track ended during it).
    for (const s of segs.slice(0, -1)) expect(s.end - s.start).toBeGreaterThanOrEqual(0.3 - 1e-9);
    const end = events[events.length - 1] as TrackEndEvent;
    expect(end.summary.segments).toBe(segs.length);
    expect(segs.reduce((n, s) => n + s.observations, 0)).toBe(end.summary.observations);
  });
});

describe('StreamTimeline', () => {
  const info: StreamInfo = { streamId: 'cam', source: 'x.mp4', kind: 'file', clock: 'media', width: 64, height: 64, fps: 25 };
  const frame = (frameId: number, faces: SmoothedFrame['faces'], ended: SmoothedFrame['ended'] = []): SmoothedFrame => ({
    frame: { streamId: 'cam', frameId, pts: frameId / 25, width: 64, height: 64, data: Buffer.alloc(0) },
    faces,
    ended,
  });
  const face = (trackId: string, isNew: boolean): SmoothedFrame['faces'][number] => {
    const p = Float32Array.from(lean('neutral'));
    return { trackId, isNew, box: { x: 1, y: 2, width: 30, height: 30 }, score: 0.9, probabilities: p, smoothed: p, label: 'neutral', confidence: 0.8 };
  };

  it('orders events: stream.start, track.start, observations, lost track.end, stream.end', () => {
    const tl = new StreamTimeline('cam');
    const ev: TimelineEvent[] = [...tl.start(info)];
    ev.push(...tl.frame(frame(0, [face('t1', true)])));
    ev.push(...tl.frame(frame(1, [face('t1', false), face('t2', true)])));
    ev.push(...tl.frame(frame(2, [], [{ trackId: 't1', lastSeen: 0.04, reason: 'lost' }])));
    ev.push(...tl.end('eof'));
    expect(ev.map((e) => `${e.type}${'trackId' in e ? `:${e.trackId}` : ''}`)).toEqual([
      'stream.start',
      'track.start:t1',
      'face.observation:t1',
      'face.observation:t1',
      'track.start:t2',
      'face.observation:t2',
      'face.segment:t1',
      'track.end:t1',
      'face.segment:t2',
      'track.end:t2',
      'stream.end',
    ]);
    const lost = ev.find((e) => e.type === 'track.end' && e.trackId === 't1') as TrackEndEvent;
    expect(lost).toMatchObject({ reason: 'lost', start: 0, end: 0.04, time: 0.08 });
    const closed = ev.find((e) => e.type === 'track.end' && e.trackId === 't2') as TrackEndEvent;
    expect(closed.reason).toBe('stream.end');
    expect(ev[ev.length - 1]).toMatchObject({ type: 'stream.end', reason: 'eof', frames: 3, tracks: 2, time: 0.08 });
    expect(new Set(ev.map((e) => e.id)).size).toBe(ev.length);
  });

  it('puts the one-line cause on a stream that ends in error', () => {
    const tl = new StreamTimeline('cam');
    tl.start(info);
    const [end] = tl.end('error', new Error('truncated video: x.mp4 after 37 frames\nmore detail'));
    expect(end).toMatchObject({ type: 'stream.end', reason: 'error', error: 'truncated video: x.mp4 after 37 frames', frames: 0 });
  });
});
