// Timeline: smoothed faces → the public events (schema/events.v1.json), per stream and per track.
//
// Segments are runs of one smoothed label. A run shorter than `minSegmentSeconds` never becomes a segment of
// its own: it is merged into the run before it (the earlier label wins), or, when it opens the track, into the
// run after it (the later label wins). A segment is emitted once it is final: when the run after it has lasted
// `minSegmentSeconds` with another label, or when the track ends. Segments of a track tile its life without
// gaps: each ends where the next starts, the last ends at the track's last observation. A track shorter than
// `minSegmentSeconds` still gets one segment.
//
// Event time: observations and track.start carry their frame's pts; face.segment and track.end carry the pts
// at which they were decided (≥ their `end`), so the events of one track are in time order.
import { type OperatorFunction, defer, map } from 'rxjs';
import { errorLine } from '../errors.js';
import {
  EXPRESSIONS,
  type EndedTrack,
  type Expression,
  type FaceObservationEvent,
  type FaceSegmentEvent,
  type StreamEndEvent,
  type StreamInfo,
  type StreamStartEvent,
  type TimelineEvent,
  type TrackEndEvent,
  type TrackStartEvent,
} from '../types.js';
import { type EventIds, eventBase, newEventId, roundBox, roundProbability, roundTime, toProbabilities } from './events.js';
import type { SmoothedFace, SmoothedFrame, SmoothedItem, StreamEndReason } from './messages.js';
import { type TimelineOptions, timelineOptionsSchema } from './options.js';
import { argmax } from './smooth.js';

interface Run {
  label: Expression;
  start: number;
  end: number;
  observations: number;
  sum: Float64Array;
}

function newRun(label: Expression, pts: number, probabilities: ArrayLike<number>): Run {
  const run: Run = { label, start: pts, end: pts, observations: 0, sum: new Float64Array(EXPRESSIONS.length) };
  addTo(run, pts, probabilities);
  return run;
}

function addTo(run: Run, pts: number, probabilities: ArrayLike<number>): void {
  run.end = pts;
  run.observations++;
  for (let i = 0; i < run.sum.length; i++) run.sum[i]! += probabilities[i] ?? 0;
}

/** `into` absorbs `from`, keeping its own label and extending over both time ranges. */
function merge(into: Run, from: Run): void {
  into.start = Math.min(into.start, from.start);
  into.end = Math.max(into.end, from.end);
  into.observations += from.observations;
  for (let i = 0; i < into.sum.length; i++) into.sum[i]! += from.sum[i]!;
}

// Pts like 35/25 − 25/25 fall a hair short of 0.4: compare durations with a tolerance far below a frame.
const EPS = 1e-6;
const duration = (r: Run): number => r.end - r.start + EPS;

const NEUTRAL = EXPRESSIONS.indexOf('neutral');

/**
 * What a reader should take away from a track. Most faces rest at neutral most of the time, so the label with
 * the most seconds says "neutral" for nearly every track, including someone who frowned for a third of it. The
 * dominant expression is therefore the longest-held non-neutral label when it holds at least `expressiveShare`
 * of the labelled time, else the longest-held label. A one-frame track has no duration in any label: its
 * strongest mean class (under the same rule).
 */
export function dominantExpression(labelSeconds: ArrayLike<number>, meanProbabilities: ArrayLike<number>, expressiveShare: number): Expression {
  let total = 0;
  for (let i = 0; i < labelSeconds.length; i++) total += labelSeconds[i]!;
  const weights = total > 0 ? labelSeconds : meanProbabilities;
  const sum = total > 0 ? total : 1;
  let expressive = -1;
  for (let i = 0; i < weights.length; i++) if (i !== NEUTRAL && (expressive < 0 || weights[i]! > weights[expressive]!)) expressive = i;
  if (expressive >= 0 && weights[expressive]! > 0 && weights[expressive]! >= expressiveShare * sum) return EXPRESSIONS[expressive]!;
  return EXPRESSIONS[argmax(weights)]!;
}

/** One track's segments and summary. Pure: feed observations in time order. */
export class TrackTimeline {
  readonly streamId: string;
  readonly trackId: string;
  readonly start: number;
  #lastSeen: number;
  readonly #minSegment: number;
  readonly #expressiveShare: number;
  #held: Run | undefined;
  #open: Run | undefined;
  #observations = 0;
  readonly #sum = new Float64Array(EXPRESSIONS.length);
  readonly #labelSeconds = new Float64Array(EXPRESSIONS.length);
  #segments = 0;
  readonly #nextId: () => string;

  constructor(streamId: string, trackId: string, start: number, options: Partial<TimelineOptions> = {}, nextId: () => string = newEventId) {
    this.#nextId = nextId;
    this.streamId = streamId;
    this.trackId = trackId;
    this.start = start;
    this.#lastSeen = start;
    const o = timelineOptionsSchema.parse(options);
    this.#minSegment = o.minSegmentSeconds;
    this.#expressiveShare = o.expressiveShare;
  }

  get lastSeen(): number {
    return this.#lastSeen;
  }

  /** Adds one observation; returns the segments it made final (zero or one). */
  observe(pts: number, label: Expression, probabilities: ArrayLike<number>): FaceSegmentEvent[] {
    this.#lastSeen = pts;
    this.#observations++;
    for (let i = 0; i < this.#sum.length; i++) this.#sum[i]! += probabilities[i] ?? 0;

    const out: FaceSegmentEvent[] = [];
    if (this.#open !== undefined && this.#open.label === label) {
      addTo(this.#open, pts, probabilities);
    } else {
      if (this.#open !== undefined) {
        this.#open.end = pts; // runs tile the track: this one ends where the next begins
        this.#settle(this.#open, pts, out);
      }
      this.#open = newRun(label, pts, probabilities);
    }
    // The open run has lasted long enough with another label: the held run can no longer grow.
    const held = this.#held;
    const open = this.#open;
    if (held !== undefined && open.label !== held.label && duration(open) >= this.#minSegment) {
      if (duration(held) >= this.#minSegment) out.push(this.#segment(held, pts));
      else merge(open, held);
      this.#held = undefined;
    }
    return out;
  }

  /** Closes the track: the remaining segment(s), then track.end. */
  end(time: number, reason: EndedTrack['reason']): (FaceSegmentEvent | TrackEndEvent)[] {
    const out: (FaceSegmentEvent | TrackEndEvent)[] = [];
    const segs: FaceSegmentEvent[] = [];
    if (this.#open !== undefined) this.#settle(this.#open, time, segs);
    this.#open = undefined;
    if (this.#held !== undefined) segs.push(this.#segment(this.#held, time));
    this.#held = undefined;
    out.push(...segs);
    const n = Math.max(1, this.#observations);
    const mean = Array.from(this.#sum, (s) => s / n);
    const dominant = dominantExpression(this.#labelSeconds, mean, this.#expressiveShare);
    out.push({
      type: 'track.end',
      ...eventBase(this.streamId, Math.max(time, this.#lastSeen), this.#nextId()),
      trackId: this.trackId,
      start: roundTime(this.start),
      end: roundTime(this.#lastSeen),
      reason,
      summary: {
        duration: roundTime(this.#lastSeen - this.start),
        observations: this.#observations,
        dominant,
        segments: this.#segments,
        meanProbabilities: toProbabilities(mean),
        labelDurations: toProbabilities(Array.from(this.#labelSeconds, roundTime)),
      },
    });
    return out;
  }

  #settle(closed: Run, now: number, out: FaceSegmentEvent[]): void {
    const held = this.#held;
    if (held === undefined) {
      this.#held = closed;
    } else if (duration(closed) < this.#minSegment || held.label === closed.label) {
      merge(held, closed);
    } else if (duration(held) < this.#minSegment) {
      merge(closed, held); // a short opening run joins the first real one
      this.#held = closed;
    } else {
      out.push(this.#segment(held, now));
      this.#held = closed;
    }
  }

  #segment(run: Run, now: number): FaceSegmentEvent {
    this.#segments++;
    this.#labelSeconds[EXPRESSIONS.indexOf(run.label)]! += run.end - run.start;
    const n = Math.max(1, run.observations);
    return {
      type: 'face.segment',
      ...eventBase(this.streamId, Math.max(now, run.end), this.#nextId()),
      trackId: this.trackId,
      label: run.label,
      start: roundTime(run.start),
      end: roundTime(run.end),
      observations: run.observations,
      meanProbabilities: toProbabilities(Array.from(run.sum, (s) => s / n)),
    };
  }
}

/** One stream's events. Pure apart from ids and emittedAt. */
export class StreamTimeline {
  readonly streamId: string;
  readonly #options: Partial<TimelineOptions>;
  readonly #tracks = new Map<string, TrackTimeline>();
  #clock: StreamInfo['clock'] = 'media';
  #frames = 0;
  #trackCount = 0;
  #lastPts: number | undefined;

  readonly #nextId: () => string;

  /** `nextId`: where this stream's event ids come from (default random UUIDs). */
  constructor(streamId: string, options: Partial<TimelineOptions> = {}, nextId: () => string = newEventId) {
    this.#nextId = nextId;
    this.streamId = streamId;
    this.#options = options;
  }

  start(info: StreamInfo): StreamStartEvent[] {
    this.#clock = info.clock;
    return [{ type: 'stream.start', ...eventBase(this.streamId, this.#now(), this.#nextId()), stream: info }];
  }

  frame(f: SmoothedFrame): TimelineEvent[] {
    const pts = f.frame.pts;
    this.#frames++;
    this.#lastPts = pts;
    const out: TimelineEvent[] = [];
    for (const e of f.ended) out.push(...this.#endTrack(e.trackId, pts, e.reason));
    for (const face of f.faces) out.push(...this.#observe(f, face));
    return out;
  }

  /** Every open track ends without a frame (camera offline, stream reassigned); the stream goes on. */
  interrupt(reason: EndedTrack['reason']): TimelineEvent[] {
    const time = this.#now();
    return [...this.#tracks.keys()].flatMap((trackId) => this.#endTrack(trackId, time, reason));
  }

  /** Closes every open track (reason 'stream.end'), then stream.end. */
  end(reason: StreamEndReason, error?: unknown): TimelineEvent[] {
    const time = this.#now();
    const out: TimelineEvent[] = [];
    for (const trackId of [...this.#tracks.keys()]) out.push(...this.#endTrack(trackId, time, 'stream.end'));
    const end: StreamEndEvent = {
      type: 'stream.end',
      ...eventBase(this.streamId, time, this.#nextId()),
      reason,
      frames: this.#frames,
      tracks: this.#trackCount,
      ...(reason === 'error' ? { error: errorLine(error ?? 'unknown error') } : {}),
    };
    out.push(end);
    return out;
  }

  #observe(f: SmoothedFrame, face: SmoothedFace): TimelineEvent[] {
    const pts = f.frame.pts;
    const out: TimelineEvent[] = [];
    let t = this.#tracks.get(face.trackId);
    if (t === undefined) {
      t = new TrackTimeline(this.streamId, face.trackId, pts, this.#options, this.#nextId);
      this.#tracks.set(face.trackId, t);
      this.#trackCount++;
      const start: TrackStartEvent = {
        type: 'track.start',
        ...eventBase(this.streamId, pts, this.#nextId()),
        trackId: face.trackId,
        frameId: f.frame.frameId,
        box: roundBox(face.box),
      };
      out.push(start);
    }
    const observation: FaceObservationEvent = {
      type: 'face.observation',
      ...eventBase(this.streamId, pts, this.#nextId()),
      trackId: face.trackId,
      frameId: f.frame.frameId,
      box: roundBox(face.box),
      probabilities: toProbabilities(face.probabilities),
      label: face.label,
      confidence: roundProbability(face.confidence),
    };
    out.push(observation, ...t.observe(pts, face.label, face.probabilities));
    return out;
  }

  #endTrack(trackId: string, time: number, reason: EndedTrack['reason']): TimelineEvent[] {
    const t = this.#tracks.get(trackId);
    if (t === undefined) return [];
    this.#tracks.delete(trackId);
    return t.end(time, reason);
  }

  /** Media streams: the last frame's pts (0 before any); live streams: now. */
  #now(): number {
    if (this.#clock === 'wall') return Date.now() / 1000;
    return this.#lastPts ?? 0;
  }
}

export interface TimelineOutput {
  streamId: string;
  events: TimelineEvent[];
  /** the frame these events came from, to release once the events are written. */
  frame?: SmoothedFrame['frame'];
}

/** Events for every stream, one StreamTimeline per streamId (created at its start). */
export function timeline(options: Partial<TimelineOptions> = {}, eventIds?: EventIds): OperatorFunction<SmoothedItem, TimelineOutput> {
  return (source) =>
    defer(() => {
      const streams = new Map<string, StreamTimeline>();
      const streamFor = (id: string): StreamTimeline => {
        let s = streams.get(id);
        if (s === undefined) streams.set(id, (s = new StreamTimeline(id, options, eventIds?.(id))));
        return s;
      };
      return source.pipe(
        map((item): TimelineOutput => {
          switch (item.kind) {
            case 'start':
              return { streamId: item.streamId, events: streamFor(item.streamId).start(item.info) };
            case 'frame':
              return { streamId: item.streamId, events: streamFor(item.streamId).frame(item.frame), frame: item.frame.frame };
            case 'break':
              return { streamId: item.streamId, events: streamFor(item.streamId).interrupt(item.reason) };
            case 'end': {
              const events = streamFor(item.streamId).end(item.reason, item.error);
              streams.delete(item.streamId);
              return { streamId: item.streamId, events };
            }
          }
        }),
      );
    });
}
