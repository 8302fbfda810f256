// Not re-reading a face that has not changed: per track, the crop is compared with the last crop the model read
// (a 16×16 grey thumbnail, brightness removed); when it barely differs and that read is recent, the track's last
// probabilities are carried forward instead of a model call. A seated audience, a panel or a still face costs
// a read a second instead of one per frame; a face that moves, talks or changes expression is read every frame.
//
// Compared with the last *read* crop, not the previous frame, so slow change cannot creep past the threshold.
// A crop may carry a reading that is still in flight: it waits for it, so the choice never depends on timing.
import type { ExpressionReading, FaceCrop } from '../types.js';
import type { ReuseOptions } from './options.js';

const SIDE = 16;

interface Reference {
  thumb: Float32Array;
  pts: number;
  frameId: number;
  /** the model's reading of the reference crop; undefined while it is in flight. */
  probabilities?: Float32Array;
  /** crops that carry this reading, waiting for it to come back. */
  waiting: FaceCrop[];
}

export class ReadReuse {
  readonly #opts: ReuseOptions;
  readonly #refs = new Map<string, Map<string, Reference>>();
  /** references whose read is in flight, by stream, track and frame (a replaced one still owes its waiters). */
  readonly #inFlight = new Map<string, Reference>();
  #read = 0;
  #reused = 0;

  constructor(opts: ReuseOptions) {
    this.#opts = opts;
  }

  /**
   * 'read': the model must read this crop. 'carried': its reading is the track's last one, given to `attach` now,
   * or as soon as that reading comes back. The choice depends only on the crops, never on how fast the model
   * answers, so a file analysed twice (a job redone by another worker) gives the same events.
   */
  decide(crop: FaceCrop, attach: (reading: ExpressionReading) => void): 'read' | 'carried' {
    if (this.#opts.maxChange <= 0) {
      this.#read++;
      return 'read';
    }
    let refs = this.#refs.get(crop.streamId);
    if (refs === undefined) this.#refs.set(crop.streamId, (refs = new Map()));
    const thumb = thumbnail(crop.rgb, crop.size);
    const ref = refs.get(crop.trackId);
    if (ref !== undefined && crop.pts - ref.pts >= 0 && crop.pts - ref.pts < this.#opts.maxAgeSeconds && change(thumb, ref.thumb) <= this.#opts.maxChange) {
      this.#reused++;
      if (ref.probabilities !== undefined) attach(carried(crop, ref.probabilities));
      else ref.waiting.push(crop);
      return 'carried';
    }
    const fresh: Reference = { thumb, pts: crop.pts, frameId: crop.frameId, waiting: [] };
    refs.set(crop.trackId, fresh);
    this.#inFlight.set(key(crop.streamId, crop.trackId, crop.frameId), fresh);
    this.#read++;
    if (refs.size > 64) this.#prune(refs, crop.pts);
    return 'read';
  }

  /** A reading from the model; returns the readings of the crops that were waiting to carry it. */
  read(reading: ExpressionReading): ExpressionReading[] {
    const k = key(reading.streamId, reading.trackId, reading.frameId);
    const ref = this.#inFlight.get(k);
    if (ref === undefined) return [];
    this.#inFlight.delete(k);
    ref.probabilities = reading.probabilities;
    const out = ref.waiting.map((c) => carried(c, reading.probabilities));
    ref.waiting = [];
    return out;
  }

  /** The stream ended: its references go. */
  forget(streamId: string): void {
    this.#refs.delete(streamId);
    for (const k of this.#inFlight.keys()) if (k.startsWith(`${streamId}\u0000`)) this.#inFlight.delete(k);
  }

  stats(): { read: number; reused: number } {
    return { read: this.#read, reused: this.#reused };
  }

  /** Tracks unseen for a while (ended) stop holding a thumbnail. */
  #prune(refs: Map<string, Reference>, now: number): void {
    for (const [trackId, ref] of refs) if (now - ref.pts > 10 * this.#opts.maxAgeSeconds && ref.waiting.length === 0) refs.delete(trackId);
  }
}

function carried(c: FaceCrop, probabilities: Float32Array): ExpressionReading {
  return { streamId: c.streamId, frameId: c.frameId, pts: c.pts, trackId: c.trackId, box: c.box, probabilities };
}

function key(streamId: string, trackId: string, frameId: number): string {
  return `${streamId}\u0000${trackId}\u0000${frameId}`;
}

/** 16×16 mean grey levels of a square RGB crop (area averaging; sides need not divide). */
export function thumbnail(rgb: Uint8Array, size: number): Float32Array {
  const { bounds, counts } = cellsFor(size);
  // It runs on the main thread for every crop (the 16-face grid: ~400 a run), so each cell's run of a row is
  // summed in a local, in integer luma (×1000, exact in a double), and written once: a float32 add per pixel
  // made it ~0.8 ms a crop.
  const sums = new Float64Array(SIDE * SIDE);
  for (let y = 0; y < size; y++) {
    const row = Math.floor((y * SIDE) / size) * SIDE;
    const base = y * size * 3;
    for (let c = 0; c < SIDE; c++) {
      let acc = 0;
      for (let i = base + bounds[c]! * 3, end = base + bounds[c + 1]! * 3; i < end; i += 3) acc += 299 * rgb[i]! + 587 * rgb[i + 1]! + 114 * rgb[i + 2]!;
      sums[row + c]! += acc;
    }
  }
  return Float32Array.from(sums, (s, c) => s / (1000 * Math.max(1, counts[c]!)));
}

/** Where each thumbnail column (and row) starts in a `size`-px crop, and pixels per cell: per crop size, once. */
const cellTables = new Map<number, { bounds: Int32Array; counts: Uint32Array }>();
function cellsFor(size: number): { bounds: Int32Array; counts: Uint32Array } {
  let t = cellTables.get(size);
  if (t === undefined) {
    // pixel x is in cell floor(x·16 / size): cell c covers [ceil(c·size / 16), ceil((c+1)·size / 16))
    const bounds = Int32Array.from({ length: SIDE + 1 }, (_, c) => Math.ceil((c * size) / SIDE));
    const counts = new Uint32Array(SIDE * SIDE);
    for (let cy = 0; cy < SIDE; cy++) for (let cx = 0; cx < SIDE; cx++) counts[cy * SIDE + cx] = (bounds[cy + 1]! - bounds[cy]!) * (bounds[cx + 1]! - bounds[cx]!);
    t = { bounds, counts };
    cellTables.set(size, t);
  }
  return t;
}

/** Mean absolute difference of two thumbnails after removing each one's mean level (a light change is not a face change). */
export function change(a: Float32Array, b: Float32Array): number {
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < a.length; i++) {
    ma += a[i]!;
    mb += b[i]!;
  }
  ma /= a.length;
  mb /= b.length;
  let d = 0;
  for (let i = 0; i < a.length; i++) d += Math.abs(a[i]! - ma - (b[i]! - mb));
  return d / a.length;
}
