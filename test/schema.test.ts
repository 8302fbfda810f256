import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { eventBase } from '../src/pipeline/events.js';
import type { SmoothedFrame } from '../src/pipeline/messages.js';
import { StreamTimeline } from '../src/pipeline/timeline.js';
import { EVENT_SCHEMA_ID, EVENT_SCHEMA_VERSION, EXPRESSIONS, type Expression, type TimelineEvent } from '../src/types.js';
import { lean } from './helpers/expressions.js';
import { EVENTS_SCHEMA_PATH, assertValidEvent, assertValidEvents } from './helpers/schema.js';

const schema = JSON.parse(readFileSync(EVENTS_SCHEMA_PATH, 'utf8')) as {
  $id: string;
  $defs: Record<string, { properties?: Record<string, unknown>; required?: string[]; enum?: string[] }>;
};

/** A realistic run through the real timeline code: two tracks, one lost, label changes, stream end. */
function syntheticRun(): TimelineEvent[] {
  const tl = new StreamTimeline('cam');
  const ev: TimelineEvent[] = [...tl.start({ streamId: 'cam', source: 'a.mp4', kind: 'file', clock: 'media', width: 640, height: 360, fps: 25, duration: 4 })];
  for (let f = 0; f < 100; f++) {
    const faces: SmoothedFrame['faces'] = [];
    const label: Expression = f < 40 ? 'neutral' : f < 70 ? 'happiness' : 'surprise';
    const p = Float32Array.from(lean(label, 0.75));
    faces.push({ trackId: 't1', isNew: f === 0, box: { x: 10.123, y: 20, width: 80, height: 80 }, score: 0.9, probabilities: p, smoothed: p, label, confidence: 0.75 });
    if (f < 30) faces.push({ trackId: 't2', isNew: f === 0, box: { x: 300, y: 20, width: 60, height: 60 }, score: 0.8, probabilities: p, smoothed: p, label: 'neutral', confidence: 0.5 });
    const ended: SmoothedFrame['ended'] = f === 56 ? [{ trackId: 't2', lastSeen: 29 / 25, reason: 'lost' }] : [];
    ev.push(...tl.frame({ frame: { streamId: 'cam', frameId: f, pts: f / 25, width: 640, height: 360, data: Buffer.alloc(0) }, faces, ended }));
  }
  ev.push(...tl.end('eof'));
  return ev;
}

describe('schema/events.v1.json', () => {
  it('is the versioned schema the code names, with the canonical class order', () => {
    expect(schema.$id).toBe(EVENT_SCHEMA_ID);
    expect(schema.$defs['expression']!.enum).toEqual([...EXPRESSIONS]);
    expect(schema.$defs['probabilities']!.required).toEqual([...EXPRESSIONS]);
    expect(EVENT_SCHEMA_VERSION).toMatch(/^1\./);
  });

  it('accepts every event type the timeline emits', () => {
    const events = syntheticRun();
    expect(new Set(events.map((e) => e.type))).toEqual(new Set(['stream.start', 'track.start', 'face.observation', 'face.segment', 'track.end', 'stream.end']));
    assertValidEvents(events);
    const errorEnd = new StreamTimeline('x').end('error', new Error('no such file: x.mp4'));
    assertValidEvents(errorEnd);
    assertValidEvent({ type: 'stream.online', ...eventBase('cam', 1_700_000_000.5), attempt: 0 });
    assertValidEvent({ type: 'stream.offline', ...eventBase('cam', 1_700_000_000.5), reason: 'server closed', retryIn: 0.5 });
  });

  it('accepts every example in docs/events.md', () => {
    const doc = readFileSync(new URL('../docs/events.md', import.meta.url), 'utf8');
    const blocks = [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1]!) as { type: string });
    expect(new Set(blocks.map((b) => b.type))).toEqual(
      new Set(['stream.start', 'stream.online', 'stream.offline', 'track.start', 'face.observation', 'face.segment', 'track.end', 'stream.end', 'job.done']),
    );
    assertValidEvents(blocks);
  });

  it('rejects events that break the contract', () => {
    const events = syntheticRun();
    const obs = events.find((e) => e.type === 'face.observation')!;
    const end = events.find((e) => e.type === 'stream.end')!;
    const bad: unknown[] = [
      { ...obs, extra: 1 },
      { ...obs, label: 'contempt' },
      { ...obs, probabilities: { ...(obs as { probabilities: object }).probabilities, neutral: 1.5 } },
      { ...obs, probabilities: Object.fromEntries(EXPRESSIONS.slice(1).map((e) => [e, 0.1])) },
      { ...obs, trackId: 'face-1' },
      { ...obs, emittedAt: 'yesterday' },
      { ...end, reason: 'error' }, // an error end must say why
      { ...end, error: 'boom' }, // and only an error end may
      { ...end, type: 'stream.paused' },
      (({ id: _id, ...rest }) => rest)(end),
    ];
    for (const e of bad) expect(() => assertValidEvent(e), JSON.stringify(e).slice(0, 120)).toThrow(/does not match/);
  });
});
