// Detection + tracking with a detection interval: Frame → TrackedFrame.
//
// The detector is the most expensive per-frame step, and between two frames a face barely moves. As in
// DeepStream's `interval`, the detector runs on every N-th frame and the tracker carries the boxes in between at
// their constant-velocity predictions (FaceTracker.carry). It runs early, on the frame at hand, when a carried
// box may be wrong or incomplete:
// - a track is young: a detection waiting for its confirming hit (a new face: report it without waiting N
//   frames) or a track seen once, whose velocity is unknown;
// - a carried box has moved more than `maxDrift` face sizes since its last detection (fast motion: the
//   prediction is only as good as the velocity estimate);
// - a carried box is leaving the frame;
// - the picture changed outside the faces since the last detection (a face may have entered): a coarse grid
//   of mean grey levels is compared with the one taken at the last detection, cells near a face excluded.
// With interval 1 this is exactly detect → track.
import { type OperatorFunction, concatMap, defer } from 'rxjs';
import type { Box, DetectHints, Detection, Frame, TrackedFrame } from '../types.js';
import { detectOne } from './detect.js';
import { type DetectionOptions, type TrackerOptions, detectionOptionsSchema } from './options.js';
import type { DetectorPort } from './ports.js';
import { FaceTracker } from './track.js';

export type EarlyReason = 'young' | 'drift' | 'leaving' | 'motion';

export interface DetectionCounts {
  frames: number;
  /** frames the detector ran on. */
  detections: number;
  /** of those, run before the interval was due, by reason. */
  early: Record<EarlyReason, number>;
}

/** Cells across the motion grid's longer side: coarse enough to ignore noise, fine enough for a small face. */
const GRID = 32;
/**
 * Grid cells this near a face are its person's own motion, not a newcomer: the head within 0.9 face sizes of
 * the face's centre and, once there are CROWD faces or more, beneath it the neck and shoulders (1.5 face widths
 * either side, 3 face heights down). A crowd of talking people moves everywhere around their faces: counted
 * as "a face may have entered", it ran the detector on 17 of 27 frames of the 16-face grid (bench/grid.ts).
 * With few faces the body still counts: there its motion is what catches a fast-moving head early (d12.mp4,
 * recall 98.9 % instead of 100 % at interval 3 without it; bench/detect-interval.ts).
 */
const FACE_MARGIN = 0.9;
const BODY_SIDE = 1.5;
const BODY_BELOW = 3;
const CROWD = 4;

export type Plan = { detect: true; reason?: EarlyReason } | { detect: false; faces: TrackedFrame['faces'] };

/** Decides, frame by frame, whether the detector must run; owns the stream's tracker. Pure apart from time. */
export class DetectionSchedule {
  readonly counts: DetectionCounts = { frames: 0, detections: 0, early: { young: 0, drift: 0, leaving: 0, motion: 0 } };
  readonly #opts: DetectionOptions;
  readonly #tracker: FaceTracker;
  readonly #motion = new MotionGrid();
  #sinceDetection = Infinity;
  /** boxes of the faces at the last detection (the motion grid ignores cells near them). */
  #faceBoxes: Box[] = [];
  #lastScan: number | undefined;

  constructor(detection: Partial<DetectionOptions> = {}, tracker: Partial<TrackerOptions> = {}) {
    this.#opts = detectionOptionsSchema.parse(detection);
    this.#tracker = new FaceTracker(tracker);
  }

  /** What to do with this frame: detect, or the carried faces. */
  plan(frame: Frame): Plan {
    this.counts.frames++;
    const o = this.#opts;
    if (o.interval <= 1 || this.#sinceDetection >= o.interval) return { detect: true };
    const early = (reason: EarlyReason): Plan => {
      this.counts.early[reason]++;
      return { detect: true, reason };
    };
    if (this.#tracker.hasYoungTrack()) return early('young');
    const carried = this.#tracker.carry(frame.pts, frame);
    if (carried.leaving) return early('leaving');
    if (carried.drift > o.maxDrift) return early('drift');
    if (this.#motion.changedShare(frame, [...this.#faceBoxes, ...carried.faces.map((f) => f.box)], o.motionLevel) > o.motionShare) return early('motion');
    this.#sinceDetection++;
    return { detect: false, faces: carried.faces };
  }

  /**
   * For a frame the detector is about to run on: the tracks' predicted boxes, and whether to look at the whole
   * frame in full (the stream's first detection, then every `scanSeconds`): a tiling detector scans it in tiles,
   * any other serves it alone rather than in a mosaic shared with other streams.
   */
  hints(frame: Frame): DetectHints {
    const scan = this.#lastScan === undefined || frame.pts - this.#lastScan >= this.#opts.scanSeconds || frame.pts < this.#lastScan;
    if (scan) this.#lastScan = frame.pts;
    return { expected: this.#tracker.expected(frame.pts, frame), scan };
  }

  /** The detector ran on this frame: update the tracker and the motion reference. */
  detected(frame: Frame, detections: readonly Detection[]): TrackedFrame {
    this.counts.detections++;
    this.#sinceDetection = 1;
    const { faces, ended } = this.#tracker.update(frame.pts, detections);
    if (this.#opts.interval > 1) {
      this.#faceBoxes = detections.map((d) => d.box);
      this.#motion.reference(frame);
    }
    return { frame, faces, ended };
  }

  carry(frame: Frame, faces: TrackedFrame['faces']): TrackedFrame {
    return { frame, faces, ended: [] };
  }
}

/** One schedule (and tracker) per subscription, i.e. per stream; frames in pts order. */
export function detectAndTrack(
  detector: DetectorPort,
  options: { detection?: Partial<DetectionOptions>; tracker?: Partial<TrackerOptions>; onCounts?: (counts: DetectionCounts) => void } = {},
): OperatorFunction<Frame, TrackedFrame> {
  return (source) =>
    defer(() => {
      const schedule = new DetectionSchedule(options.detection, options.tracker);
      return source.pipe(
        concatMap(async (frame) => {
          const plan = schedule.plan(frame);
          const out = plan.detect ? schedule.detected(frame, await detectOne(detector, frame, schedule.hints(frame))) : schedule.carry(frame, plan.faces);
          options.onCounts?.(schedule.counts);
          return out;
        }),
      );
    });
}

/** Mean grey level per cell of a coarse grid, sampled sparsely: ~1 % of a frame's pixels, well under 1 ms. */
export class MotionGrid {
  #ref = new Float32Array(0);
  #cur = new Float32Array(0);
  #cols = 0;
  #rows = 0;
  #key = '';

  reference(frame: Frame): void {
    this.#fit(frame);
    this.#measure(frame, this.#ref);
  }

  /** Share of the cells away from `faces` whose mean grey level moved by more than `level` since the reference. */
  changedShare(frame: Frame, faces: readonly Box[], level: number): number {
    if (this.#key !== `${frame.width}x${frame.height}`) return 1; // no reference for this size: detect
    this.#measure(frame, this.#cur);
    const cw = frame.width / this.#cols;
    const ch = frame.height / this.#rows;
    let outside = 0;
    let changed = 0;
    const crowd = faces.length >= CROWD;
    for (let r = 0; r < this.#rows; r++) {
      for (let c = 0; c < this.#cols; c++) {
        const x = (c + 0.5) * cw;
        const y = (r + 0.5) * ch;
        if (faces.some((b) => nearPerson(x, y, b, cw, ch, crowd))) continue;
        outside++;
        const i = r * this.#cols + c;
        if (Math.abs(this.#cur[i]! - this.#ref[i]!) > level) changed++;
      }
    }
    return outside === 0 ? 0 : changed / outside;
  }

  #fit(frame: Frame): void {
    const key = `${frame.width}x${frame.height}`;
    if (key === this.#key) return;
    this.#key = key;
    const long = Math.max(frame.width, frame.height);
    this.#cols = Math.max(1, Math.round((GRID * frame.width) / long));
    this.#rows = Math.max(1, Math.round((GRID * frame.height) / long));
    this.#ref = new Float32Array(this.#cols * this.#rows);
    this.#cur = new Float32Array(this.#cols * this.#rows);
  }

  #measure(frame: Frame, out: Float32Array): void {
    const { width: W, height: H, data } = frame;
    const cols = this.#cols;
    const rows = this.#rows;
    // 4×4 samples per cell: averaging 16 pixels keeps compression noise well below `level`.
    for (let r = 0; r < rows; r++) {
      const y0 = Math.floor((r * H) / rows);
      const y1 = Math.floor(((r + 1) * H) / rows);
      for (let c = 0; c < cols; c++) {
        const x0 = Math.floor((c * W) / cols);
        const x1 = Math.floor(((c + 1) * W) / cols);
        let sum = 0;
        let n = 0;
        for (let sy = 0; sy < 4; sy++) {
          const y = y0 + Math.floor(((sy + 0.5) * (y1 - y0)) / 4);
          for (let sx = 0; sx < 4; sx++) {
            const x = x0 + Math.floor(((sx + 0.5) * (x1 - x0)) / 4);
            const p = (y * W + x) * 3;
            sum += 0.299 * data[p]! + 0.587 * data[p + 1]! + 0.114 * data[p + 2]!;
            n++;
          }
        }
        out[r * cols + c] = sum / n;
      }
    }
  }
}

/** Whether (x, y) lies on the person whose face is `b`: the head around it or, in a crowd, the body below it (one cell of slack). */
function nearPerson(x: number, y: number, b: Box, cw: number, ch: number, withBody: boolean): boolean {
  const dx = Math.abs(x - (b.x + b.width / 2));
  const dy = y - (b.y + b.height / 2);
  if (dx < FACE_MARGIN * b.width + cw && Math.abs(dy) < FACE_MARGIN * b.height + ch) return true;
  return withBody && dx < BODY_SIDE * b.width + cw && dy > 0 && dy < BODY_BELOW * b.height + ch;
}
