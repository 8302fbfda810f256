// A consumer's view of worker spells on cameras (docs/events.md, "Worker hand-over"): a worker that dies
// writes no track.end for the faces it was following. When the next worker's stream.start says it replaces a
// lost worker (`stream.replaces.reason` "worker-lost"), the tracks that worker left open are closed here with
// a track.end of reason `worker-lost`, built from what was seen of each track (its observations and segments).
// Its id is derived from (stream, worker, track, start), so two consumers, or one reading twice, agree on it.
import { createHash } from 'node:crypto';
import { eventBase } from '../pipeline/events.js';
import { timelineOptionsSchema } from '../pipeline/options.js';
import { dominantExpression } from '../pipeline/timeline.js';
import { EXPRESSIONS, type ExpressionProbabilities, type TimelineEvent, type TrackEndEvent } from '../types.js';

interface OpenTrack {
  start: number;
  last: number;
  observations: number;
  sum: number[];
  segments: number;
  labelDurations: number[];
}

function derivedId(parts: string[]): string {
  const h = createHash('sha256').update(parts.join('\u0000')).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const probs = (v: number[]): ExpressionProbabilities => Object.fromEntries(EXPRESSIONS.map((k, i) => [k, Math.round((v[i] ?? 0) * 1e4) / 1e4])) as ExpressionProbabilities;

const EXPRESSIVE_SHARE = timelineOptionsSchema.parse({}).expressiveShare;

export class SpellTracker {
  /** `${streamId}\0${worker}` → trackId → what was seen of it. */
  readonly #open = new Map<string, Map<string, OpenTrack>>();

  /** Feeds one event (with the `worker` header of its message, '' if none); returns the track.end events it implies. */
  see(e: TimelineEvent, worker: string): TrackEndEvent[] {
    const key = `${e.streamId}\u0000${worker}`;
    switch (e.type) {
      case 'track.start': {
        const tracks = this.#open.get(key) ?? new Map<string, OpenTrack>();
        tracks.set(e.trackId, { start: e.time, last: e.time, observations: 0, sum: EXPRESSIONS.map(() => 0), segments: 0, labelDurations: EXPRESSIONS.map(() => 0) });
        this.#open.set(key, tracks);
        return [];
      }
      case 'face.observation': {
        const t = this.#open.get(key)?.get(e.trackId);
        if (t !== undefined) {
          t.observations++;
          t.last = Math.max(t.last, e.time);
          EXPRESSIONS.forEach((k, i) => (t.sum[i]! += e.probabilities[k]));
        }
        return [];
      }
      case 'face.segment': {
        const t = this.#open.get(key)?.get(e.trackId);
        if (t !== undefined) {
          t.segments++;
          t.labelDurations[EXPRESSIONS.indexOf(e.label)]! += e.end - e.start;
        }
        return [];
      }
      case 'track.end':
        this.#open.get(key)?.delete(e.trackId);
        return [];
      case 'stream.end':
        this.#open.delete(key);
        return [];
      case 'stream.start': {
        const r = e.stream.replaces;
        if (r === undefined || r.reason !== 'worker-lost') return [];
        const lostKey = `${e.streamId}\u0000${r.worker}`;
        const tracks = this.#open.get(lostKey);
        this.#open.delete(lostKey);
        return [...(tracks ?? [])].map(([trackId, t]) => this.#end(e.streamId, r.worker, trackId, t));
      }
      default:
        return [];
    }
  }

  #end(streamId: string, worker: string, trackId: string, t: OpenTrack): TrackEndEvent {
    const mean = t.sum.map((s) => (t.observations > 0 ? s / t.observations : 0));
    // read as a worker would have read it had it ended the track itself
    const dominant = dominantExpression(t.labelDurations, mean, EXPRESSIVE_SHARE);
    return {
      type: 'track.end',
      ...eventBase(streamId, t.last, derivedId([streamId, worker, trackId, String(t.start), 'worker-lost'])),
      trackId,
      start: t.start,
      end: t.last,
      reason: 'worker-lost',
      summary: {
        duration: Math.round((t.last - t.start) * 1e6) / 1e6,
        observations: t.observations,
        dominant,
        segments: t.segments,
        meanProbabilities: probs(mean),
        labelDurations: probs(t.labelDurations),
      },
    };
  }
}
