// Schema-valid timeline events without the model pipeline, for sink tests: per stream a stream.start, then
// tracks interleaved frame by frame (track.start, face.observation…, face.segment, track.end), then stream.end.
import { randomUUID } from 'node:crypto';
import { EVENT_SCHEMA_VERSION, EXPRESSIONS, type ExpressionProbabilities, type TimelineEvent } from '../../src/types.js';

function probs(hot: number): ExpressionProbabilities {
  const out = {} as ExpressionProbabilities;
  EXPRESSIONS.forEach((e, i) => (out[e] = i === hot ? 0.7 : 0.05));
  return out;
}

export interface SyntheticOptions {
  streams?: number;
  tracksPerStream?: number;
  observationsPerTrack?: number;
  /** prefix for stream ids, so parallel runs never share keys. */
  prefix?: string;
}

export function syntheticEvents(o: SyntheticOptions = {}): TimelineEvent[] {
  const streams = o.streams ?? 2;
  const tracks = o.tracksPerStream ?? 3;
  const obs = o.observationsPerTrack ?? 10;
  const prefix = o.prefix ?? 'cam';
  const out: TimelineEvent[] = [];
  const base = (streamId: string, time: number) => ({
    id: randomUUID(),
    schemaVersion: EVENT_SCHEMA_VERSION,
    streamId,
    time,
    emittedAt: new Date().toISOString(),
  });
  for (let s = 0; s < streams; s++) {
    const streamId = `${prefix}-${s}`;
    out.push({ ...base(streamId, 0), type: 'stream.start', stream: { streamId, source: `${streamId}.mp4`, kind: 'file', clock: 'media', width: 640, height: 360, fps: 25 } });
    for (let f = 0; f < obs; f++) {
      for (let t = 1; t <= tracks; t++) {
        const trackId = `t${t}`;
        const time = f / 25;
        const box = { x: 10 * t, y: 20, width: 64, height: 64 };
        if (f === 0) out.push({ ...base(streamId, time), type: 'track.start', trackId, frameId: f, box });
        const label = EXPRESSIONS[(t + (f >= obs / 2 ? 1 : 0)) % EXPRESSIONS.length]!;
        out.push({ ...base(streamId, time), type: 'face.observation', trackId, frameId: f, box, probabilities: probs(EXPRESSIONS.indexOf(label)), label, confidence: 0.7 });
      }
    }
    const end = (obs - 1) / 25;
    for (let t = 1; t <= tracks; t++) {
      const trackId = `t${t}`;
      const label = EXPRESSIONS[t % EXPRESSIONS.length]!;
      out.push({ ...base(streamId, end), type: 'face.segment', trackId, label, start: 0, end, observations: obs, meanProbabilities: probs(t % 7) });
      const zero = {} as ExpressionProbabilities;
      EXPRESSIONS.forEach((e) => (zero[e] = 0));
      out.push({
        ...base(streamId, end),
        type: 'track.end',
        trackId,
        start: 0,
        end,
        reason: 'stream.end',
        summary: { duration: end, observations: obs, dominant: label, segments: 1, meanProbabilities: probs(t % 7), labelDurations: { ...zero, [label]: end } },
      });
    }
    out.push({ ...base(streamId, end), type: 'stream.end', reason: 'eof', frames: obs, tracks });
  }
  return out;
}

/** The order consumers must see: events grouped by Kafka key (stream/track), in emission order. */
export function idsByKey(events: TimelineEvent[], key: (e: TimelineEvent) => string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const e of events) {
    const k = key(e);
    const list = m.get(k) ?? [];
    list.push(e.id);
    m.set(k, list);
  }
  return m;
}
