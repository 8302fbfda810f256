// Tracking: DetectedFrame → TrackedFrame, stable ids per stream.
//
// The algorithm is SORT (Bewley et al., 2016, "Simple Online and Realtime Tracking") with two changes that
// suit faces and a variable frame rate:
// - motion: a constant-velocity alpha-beta filter on the box centre (velocity in px per second of pts, so a
//   sampled or jittery stream predicts correctly) instead of SORT's Kalman filter; the reported box is always
//   the detector's own box, the filter only predicts where to look next;
// - cost: 1 − IoU(prediction, detection) + centreWeight × centre distance in face sizes, gated by IoU *or*
//   centre distance (fast motion at a low sample rate gives zero IoU between frames) and by size ratio.
// Assignment is optimal (Hungarian, the `munkres` package). A track is reported once it has `minHits`
// detections (faces on a stream's first frame are reported at once, as in SORT's start-up rule), and ends
// once unseen for more than `maxLostSeconds`. Ids `t1, t2, …` are never reused within a stream.
import { munkres } from 'munkres';
import { type OperatorFunction, defer, map } from 'rxjs';
import { iou } from '../geometry.js';
import type { Box, DetectedFrame, Detection, EndedTrack, TrackedFace, TrackedFrame } from '../types.js';
import type { TrackerOptions } from './options.js';
import { trackerOptionsSchema } from './options.js';

/** Cost of a pair the gate forbids; any real cost is below 1 + 2 × centreWeight. */
const FORBIDDEN = 1e6;

interface Track {
  /** assigned when the track is confirmed. */
  id?: string;
  cx: number;
  cy: number;
  w: number;
  h: number;
  /** px per second. */
  vx: number;
  vy: number;
  lastSeen: number;
  hits: number;
  /** the latest detection's score (reported again on carried frames). */
  score: number;
  /** matched by the latest detections: only these are carried between detections. */
  visible: boolean;
}

export interface TrackerUpdate {
  faces: TrackedFace[];
  ended: EndedTrack[];
}

export interface CarriedFaces {
  /** visible confirmed tracks at their predicted boxes, clipped to the frame. */
  faces: TrackedFace[];
  /** largest predicted move since a track's last detection, in face sizes: how stale the carried boxes are. */
  drift: number;
  /** a carried box is mostly outside the frame (a face leaving): only a detection can tell. */
  leaving: boolean;
}

/** The tracker core: pure, one per stream, fed frames in pts order. */
export class FaceTracker {
  readonly #opts: TrackerOptions;
  #tracks: Track[] = [];
  #nextId = 1;
  #frames = 0;

  constructor(options: Partial<TrackerOptions> = {}) {
    this.#opts = trackerOptionsSchema.parse(options);
  }

  /** Advance to `pts` with this frame's detections (an empty list still ages every track). */
  update(pts: number, detections: readonly Detection[]): TrackerUpdate {
    const first = this.#frames++ === 0;
    const o = this.#opts;
    const predicted = this.#tracks.map((t) => predict(t, pts, o.maxCoastSeconds));
    const cost = this.#tracks.map((_, i) => detections.map((d) => this.#cost(predicted[i]!, d.box)));

    const matchedTrack = new Map<number, number>(); // detection index → track index
    if (this.#tracks.length > 0 && detections.length > 0) {
      for (const [ti, di] of munkres(cost)) {
        if ((cost[ti]?.[di] ?? FORBIDDEN) < FORBIDDEN) matchedTrack.set(di, ti);
      }
    }

    const faces: TrackedFace[] = [];
    const seen = new Set<Track>();
    detections.forEach((det, di) => {
      const ti = matchedTrack.get(di);
      let track: Track;
      if (ti === undefined) {
        track = newTrack(det.box, pts);
        this.#tracks.push(track);
      } else {
        track = this.#tracks[ti]!;
        this.#correct(track, det.box, pts);
      }
      track.score = det.score;
      seen.add(track);
      let isNew = false;
      if (track.id === undefined && (track.hits >= o.minHits || first)) {
        track.id = `t${this.#nextId++}`;
        isNew = true;
      }
      if (track.id !== undefined) faces.push({ trackId: track.id, box: det.box, score: det.score, isNew });
    });

    const ended: EndedTrack[] = [];
    for (const t of this.#tracks) t.visible = seen.has(t);
    this.#tracks = this.#tracks.filter((t) => {
      if (seen.has(t)) return true;
      // A tentative track that misses a frame was most likely a false detection: drop it silently.
      if (t.id === undefined) return false;
      if (pts - t.lastSeen > o.maxLostSeconds) {
        ended.push({ trackId: t.id, lastSeen: t.lastSeen, reason: 'lost' });
        return false;
      }
      return true;
    });
    faces.sort(byTrackNumber);
    return { faces, ended };
  }

  /**
   * A frame without detections (the detector skipped it): every confirmed track the latest detections saw is
   * reported at its constant-velocity prediction for `pts`. Nothing is aged or corrected, so the next
   * detections are matched exactly as if this frame had never been seen.
   */
  carry(pts: number, frame: { width: number; height: number }): CarriedFaces {
    const faces: TrackedFace[] = [];
    let drift = 0;
    let leaving = false;
    for (const t of this.#tracks) {
      if (t.id === undefined || !t.visible) continue;
      const p = predict(t, pts, this.#opts.maxCoastSeconds);
      drift = Math.max(drift, Math.hypot(p.x + p.width / 2 - t.cx, p.y + p.height / 2 - t.cy) / Math.max(1, Math.sqrt(t.w * t.h)));
      const box = clipToFrame(p, frame);
      if (box.width * box.height < 0.5 * p.width * p.height) {
        leaving = true;
        continue;
      }
      faces.push({ trackId: t.id, box, score: t.score, isNew: false });
    }
    faces.sort(byTrackNumber);
    return { faces, drift, leaving };
  }

  /** Where every track (tentative and coasting ones too) should be at `pts`: what the detector looks for. */
  expected(pts: number, frame: { width: number; height: number }): Box[] {
    return this.#tracks.map((t) => clipToFrame(predict(t, pts, this.#opts.maxCoastSeconds), frame)).filter((b) => b.width > 0 && b.height > 0);
  }

  /**
   * A track is too young to be carried: a detection waiting for its confirming hit, or a track seen once, whose
   * velocity is still unknown (carried at zero velocity, a face that moves would be lost by the next detection).
   */
  hasYoungTrack(): boolean {
    return this.#tracks.some((t) => t.id === undefined || t.hits < 2);
  }

  /** The stream is over: every reported track ends. */
  finish(): EndedTrack[] {
    const ended = this.#tracks
      .filter((t): t is Track & { id: string } => t.id !== undefined)
      .map((t) => ({ trackId: t.id, lastSeen: t.lastSeen, reason: 'stream.end' as const }));
    this.#tracks = [];
    return ended;
  }

  /** Reported tracks still alive (seen or coasting). */
  activeTrackIds(): string[] {
    return this.#tracks.flatMap((t) => (t.id === undefined ? [] : [t.id]));
  }

  #cost(pred: Box, det: Box): number {
    const o = this.#opts;
    const sizeA = Math.sqrt(pred.width * pred.height);
    const sizeB = Math.sqrt(det.width * det.height);
    const ratio = Math.max(sizeA, sizeB) / Math.max(1e-6, Math.min(sizeA, sizeB));
    const overlap = iou(pred, det);
    const dist = centreDistance(pred, det) / Math.max(1e-6, (sizeA + sizeB) / 2);
    if (ratio > o.maxSizeRatio) return FORBIDDEN;
    if (overlap < o.minIoU && dist > o.maxCentreDistance) return FORBIDDEN;
    return 1 - overlap + o.centreWeight * Math.min(dist, 2);
  }

  #correct(t: Track, box: Box, pts: number): void {
    const dt = pts - t.lastSeen;
    const cx = box.x + box.width / 2;
    const cy = box.y + box.height / 2;
    if (dt > 0) {
      // Alpha-beta with alpha = 1 (the detector's box is trusted): velocity is an EMA of the observed motion.
      const g = this.#opts.velocityGain;
      t.vx = (1 - g) * t.vx + (g * (cx - t.cx)) / dt;
      t.vy = (1 - g) * t.vy + (g * (cy - t.cy)) / dt;
    }
    t.cx = cx;
    t.cy = cy;
    t.w = box.width;
    t.h = box.height;
    t.lastSeen = pts;
    t.hits++;
  }
}

function newTrack(box: Box, pts: number): Track {
  return { cx: box.x + box.width / 2, cy: box.y + box.height / 2, w: box.width, h: box.height, vx: 0, vy: 0, lastSeen: pts, hits: 1, score: 0, visible: true };
}

function clipToFrame(b: Box, frame: { width: number; height: number }): Box {
  const x0 = Math.max(0, b.x);
  const y0 = Math.max(0, b.y);
  const x1 = Math.min(frame.width, b.x + b.width);
  const y1 = Math.min(frame.height, b.y + b.height);
  return { x: x0, y: y0, width: Math.max(0, x1 - x0), height: Math.max(0, y1 - y0) };
}

function predict(t: Track, pts: number, maxCoastSeconds: number): Box {
  const dt = Math.min(Math.max(0, pts - t.lastSeen), maxCoastSeconds);
  const cx = t.cx + t.vx * dt;
  const cy = t.cy + t.vy * dt;
  return { x: cx - t.w / 2, y: cy - t.h / 2, width: t.w, height: t.h };
}

function centreDistance(a: Box, b: Box): number {
  return Math.hypot(a.x + a.width / 2 - (b.x + b.width / 2), a.y + a.height / 2 - (b.y + b.height / 2));
}

function byTrackNumber(a: TrackedFace, b: TrackedFace): number {
  return Number(a.trackId.slice(1)) - Number(b.trackId.slice(1));
}

/** One tracker per subscription (per stream): frames must come from a single stream, in pts order. */
export function track(options: Partial<TrackerOptions> = {}): OperatorFunction<DetectedFrame, TrackedFrame> {
  return (source) =>
    // Built per subscription so that re-subscribing (a reconnecting camera) never shares state.
    defer(() => {
      const tracker = new FaceTracker(options);
      return source.pipe(
        map(({ frame, detections }) => {
          const { faces, ended } = tracker.update(frame.pts, detections);
          return { frame, faces, ended };
        }),
      );
    });
}
