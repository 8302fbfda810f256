// Folds a flat list of timeline events into streams and tracks, the shape every view draws from.
// Views never re-derive labels or segments: they show what the pipeline emitted, so a report, an
// annotated video and the dashboard cannot disagree with the JSONL on the same run.
import type {
  Expression,
  FaceObservationEvent,
  FaceSegmentEvent,
  StreamEndEvent,
  StreamInfo,
  TimelineEvent,
  TrackEndEvent,
} from '../types.js';

export interface TrackView {
  streamId: string;
  trackId: string;
  /** observations in emission order (time order within a track). */
  observations: FaceObservationEvent[];
  segments: FaceSegmentEvent[];
  end?: TrackEndEvent;
}

export interface StreamView {
  streamId: string;
  info?: StreamInfo;
  end?: StreamEndEvent;
  tracks: Map<string, TrackView>;
}

export function buildTimeline(events: Iterable<TimelineEvent>): Map<string, StreamView> {
  const streams = new Map<string, StreamView>();
  const streamOf = (streamId: string): StreamView => {
    let s = streams.get(streamId);
    if (!s) {
      s = { streamId, tracks: new Map() };
      streams.set(streamId, s);
    }
    return s;
  };
  const trackOf = (streamId: string, trackId: string): TrackView => {
    const s = streamOf(streamId);
    let t = s.tracks.get(trackId);
    if (!t) {
      t = { streamId, trackId, observations: [], segments: [] };
      s.tracks.set(trackId, t);
    }
    return t;
  };
  for (const e of events) {
    switch (e.type) {
      case 'stream.start':
        streamOf(e.streamId).info = e.stream;
        break;
      case 'stream.end':
        streamOf(e.streamId).end = e;
        break;
      case 'track.start':
        trackOf(e.streamId, e.trackId);
        break;
      case 'face.observation':
        trackOf(e.streamId, e.trackId).observations.push(e);
        break;
      case 'face.segment':
        trackOf(e.streamId, e.trackId).segments.push(e);
        break;
      case 'track.end':
        trackOf(e.streamId, e.trackId).end = e;
        break;
      default:
        break;
    }
  }
  return streams;
}

/** A run of one smoothed label, as drawn in label bands. */
export interface LabelRun {
  label: Expression;
  start: number;
  end: number;
}

/**
 * The label band of a track: its emitted segments when it has any; otherwise (a run cut short before
 * the pipeline closed its segments) the runs of the observations' smoothed labels.
 */
export function labelRuns(track: TrackView): LabelRun[] {
  if (track.segments.length > 0) return track.segments.map((s) => ({ label: s.label, start: s.start, end: s.end }));
  const runs: LabelRun[] = [];
  for (const o of track.observations) {
    const last = runs[runs.length - 1];
    if (last && last.label === o.label) last.end = o.time;
    else {
      if (last) last.end = o.time;
      runs.push({ label: o.label, start: o.time, end: o.time });
    }
  }
  return runs;
}

/** Time span a track covers: from track.end when present, else from its observations. */
export function trackSpan(track: TrackView): { start: number; end: number } | undefined {
  if (track.end) return { start: track.end.start, end: track.end.end };
  const first = track.observations[0];
  const last = track.observations[track.observations.length - 1];
  if (!first || !last) return undefined;
  return { start: first.time, end: last.time };
}
