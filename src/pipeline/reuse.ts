// Not re-reading a face that has not changed: per track, the crop is compared with the last crop the model read
// (a 16×16 grey thumbnail, brightness removed); when it barely differs and that read is recent, the track's last
// probabilities are carried forward instead of a model call. A seated audience, a panel or a still face costs
// a read a second instead of one per frame; a face that moves, talks or changes expression is read every frame.
//
// Compared with the last *read* crop, not the previous frame, so slow change cannot creep past the threshold.
import type { ExpressionReading, FaceCrop } from '../types.js';
import type { ReuseOptions } from './options.js';

const SIDE = 16;

interface Reference {
  thumb: Float32Array;
  pts: number;
  frameId: number;
  /** the model's reading of the reference crop; undefined while it is in flight. */
  probabilities?: Float32Array;
}

export class ReadReuse {
  readonly #opts: ReuseOptions;
  readonly #refs = new Map<string, Map<string, Reference>>();
  #read = 0;
  #reused = 0;

  constructor(opts: ReuseOptions) {
    this.#opts = opts;
  }

  /** The probabilities to carry forward for this crop, or undefined: the model must read it. */
  decide(crop: FaceCrop): Float32Array | undefined {
    if (this.#opts.maxChange <= 0) {
      this.#read++;
      return undefined;
    }
    let refs = this.#refs.get(crop.streamId);
    if (refs === undefined) this.#refs.set(crop.streamId, (refs = new Map()));
    const thumb = thumbnail(crop.rgb, crop.size);
    const ref = refs.get(crop.trackId);
    const unchanged =
      ref !== undefined && crop.pts - ref.pts >= 0 && crop.pts - ref.pts < this.#opts.maxAgeSeconds && change(thumb, ref.thumb) <= this.#opts.maxChange;
    if (unchanged && ref.probabilities !== undefined) {
      this.#reused++;
      return ref.probabilities;
    }
    // an unchanged face whose reference is still being read is read too, but the reference stays: replacing it
    // would keep it in flight for as long as frames come faster than the model answers
    if (!unchanged) refs.set(crop.trackId, { thumb, pts: crop.pts, frameId: crop.frameId });
    this.#read++;
    if (refs.size > 64) this.#prune(refs, crop.pts);
    return undefined;
  }

  /** A reading from the model: it becomes its track's reference if it is the crop last chosen as one. */
  read(reading: ExpressionReading): void {
    const ref = this.#refs.get(reading.streamId)?.get(reading.trackId);
    if (ref !== undefined && ref.frameId === reading.frameId) ref.probabilities = reading.probabilities;
  }

  /** The stream ended: its references go. */
  forget(streamId: string): void {
    this.#refs.delete(streamId);
  }

  stats(): { read: number; reused: number } {
    return { read: this.#read, reused: this.#reused };
  }

  /** Tracks unseen for a while (ended) stop holding a thumbnail. */
  #prune(refs: Map<string, Reference>, now: number): void {
    for (const [trackId, ref] of refs) if (now - ref.pts > 10 * this.#opts.maxAgeSeconds) refs.delete(trackId);
  }
}

/** 16×16 mean grey levels of a square RGB crop (area averaging; sides need not divide). */
export function thumbnail(rgb: Uint8Array, size: number): Float32Array {
  const sums = new Float32Array(SIDE * SIDE);
  const counts = new Uint32Array(SIDE * SIDE);
  for (let y = 0; y < size; y++) {
    const row = Math.floor((y * SIDE) / size) * SIDE;
    for (let x = 0; x < size; x++) {
      const i = (y * size + x) * 3;
      const cell = row + Math.floor((x * SIDE) / size);
      sums[cell]! += 0.299 * rgb[i]! + 0.587 * rgb[i + 1]! + 0.114 * rgb[i + 2]!;
      counts[cell]!++;
    }
  }
  for (let c = 0; c < sums.length; c++) sums[c] = sums[c]! / Math.max(1, counts[c]!);
  return sums;
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
