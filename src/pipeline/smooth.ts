// Smoothing per track, so labels don't flicker from one frame to the next.
//
// Probabilities: an exponential moving average whose weight depends on the time between observations,
// alpha = 1 − exp(−Δt / tau), so the same tau means the same smoothing at 25 fps or at a sampled 5 fps, and
// after a long gap the new reading dominates. Label: hysteresis — the label changes only when another
// class's smoothed probability beats the current label's by at least `hysteresis`.
import { type OperatorFunction, defer, map } from 'rxjs';
import { EXPRESSIONS, type Expression } from '../types.js';
import type { ReadItem, SmoothedFace, SmoothedItem } from './messages.js';
import { type SmoothingOptions, smoothingOptionsSchema } from './options.js';

export interface SmoothedReading {
  smoothed: Float32Array;
  label: Expression;
  confidence: number;
}

/** One track's smoothing state. Pure: feed it readings in time order. */
export class ExpressionSmoother {
  readonly #tau: number;
  readonly #hysteresis: number;
  #state: Float32Array | undefined;
  #label = 0;
  #lastPts = 0;

  constructor(options: Partial<SmoothingOptions> = {}) {
    const o = smoothingOptionsSchema.parse(options);
    this.#tau = o.tauSeconds;
    this.#hysteresis = o.hysteresis;
  }

  update(pts: number, probabilities: ArrayLike<number>): SmoothedReading {
    if (probabilities.length !== EXPRESSIONS.length) {
      throw new RangeError(`expected ${EXPRESSIONS.length} probabilities, got ${probabilities.length}`);
    }
    if (this.#state === undefined) {
      this.#state = Float32Array.from(probabilities);
      this.#label = argmax(this.#state);
    } else {
      const dt = Math.max(0, pts - this.#lastPts);
      const alpha = 1 - Math.exp(-dt / this.#tau);
      for (let i = 0; i < this.#state.length; i++) {
        this.#state[i] = this.#state[i]! + alpha * (probabilities[i]! - this.#state[i]!);
      }
      const best = argmax(this.#state);
      if (best !== this.#label && this.#state[best]! >= this.#state[this.#label]! + this.#hysteresis) this.#label = best;
    }
    this.#lastPts = pts;
    return { smoothed: Float32Array.from(this.#state), label: EXPRESSIONS[this.#label]!, confidence: this.#state[this.#label]! };
  }
}

export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** Smooths every face of every stream; state is per (stream, track) and freed when the track ends. */
export function smooth(options: Partial<SmoothingOptions> = {}): OperatorFunction<ReadItem, SmoothedItem> {
  return (source) =>
    defer(() => {
      const smoothers = new Map<string, ExpressionSmoother>();
      const key = (streamId: string, trackId: string): string => `${streamId}\u0000${trackId}`;
      return source.pipe(
        map((item): SmoothedItem => {
          if (item.kind === 'start') return item;
          if (item.kind === 'end' || item.kind === 'break') {
            for (const k of [...smoothers.keys()]) if (k.startsWith(`${item.streamId}\u0000`)) smoothers.delete(k);
            return item;
          }
          const { frame, faces, ended, readings } = item.frame;
          const smoothedFaces = faces.map((face): SmoothedFace => {
            const probabilities = readings.get(face.trackId);
            if (probabilities === undefined) throw new Error(`no reading for ${item.streamId}/${face.trackId} on frame ${frame.frameId}`);
            const k = key(item.streamId, face.trackId);
            let s = smoothers.get(k);
            if (s === undefined) smoothers.set(k, (s = new ExpressionSmoother(options)));
            return { ...face, probabilities, ...s.update(frame.pts, probabilities) };
          });
          for (const e of ended) smoothers.delete(key(item.streamId, e.trackId));
          return { kind: 'frame', streamId: item.streamId, frame: { frame, faces: smoothedFaces, ended } };
        }),
      );
    });
}
