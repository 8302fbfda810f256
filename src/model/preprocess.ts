// Face crop (square RGB24) → a model's float input, as its manifest's `inputs.image` says, computing exactly what
// the trainer's `cafe_models/transforms.preprocess` computes: optional grey (0.299 R + 0.587 G + 0.114 B on all
// three channels), a straight bilinear resize of the whole crop (half-pixel centres, antialiased when
// shrinking: PyTorch's `interpolate(..., antialias=True)`, which is PIL's triangle filter), x = (v/255 - mean) / std,
// NCHW or NHWC; an input of one channel (a grey input folded by `trainer fold-grey-input`) gets channel 0 only.
// Weights of the resize are computed once per (crop size, input size); buffers are reused.

import type { ColorMode, ImageInputSpec } from './manifest.js';

const GRAY = [0.299, 0.587, 0.114] as const;

export interface CropPixels {
  /** side of the square crop, in pixels. */
  size: number;
  /** RGB24, size × size × 3 bytes. */
  rgb: Uint8Array;
}

/** For one output coordinate: the first source index and the normalised weights of its taps. */
export interface ResizeTaps {
  start: Int32Array;
  count: Int32Array;
  /** `maxTaps` weights per output index, zero-padded. */
  weights: Float32Array;
  maxTaps: number;
}

/**
 * Triangle-filter taps from `inSize` to `outSize` samples (PIL's / PyTorch's antialiased bilinear):
 * support grows with the shrink factor, so every source pixel contributes; upscaling is plain bilinear.
 */
export function resizeTaps(inSize: number, outSize: number): ResizeTaps {
  const scale = inSize / outSize;
  const support = scale >= 1 ? scale : 1;
  const invScale = scale >= 1 ? 1 / scale : 1;
  const maxTaps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float32Array(outSize * maxTaps);
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    // Math.trunc, like the C int cast in PIL/PyTorch (centre - support + 0.5 can be negative).
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    let total = 0;
    const n = Math.min(hi - lo, maxTaps);
    for (let j = 0; j < n; j++) {
      const t = Math.abs((j + lo - center + 0.5) * invScale);
      const w = t < 1 ? 1 - t : 0;
      weights[i * maxTaps + j] = w;
      total += w;
    }
    if (total > 0) for (let j = 0; j < n; j++) weights[i * maxTaps + j]! /= total;
    start[i] = lo;
    count[i] = n;
  }
  return { start, count, weights, maxTaps };
}

/** Writes model inputs for crops into a batch buffer that is reused between calls. */
export class ImagePreprocessor {
  readonly spec: ImageInputSpec;
  readonly color: ColorMode;
  /** channels of the model input: 3, or 1 for a folded grey input. */
  readonly outChannels: number;
  /** floats per crop in the model input. */
  readonly itemLength: number;
  #batch = new Float32Array(0);
  #planes = new Float32Array(0);
  #rows = new Float32Array(0);
  #tapsFor = -1;
  #tx: ResizeTaps | undefined;
  #ty: ResizeTaps | undefined;
  readonly #scale: Float32Array;
  readonly #offset: Float32Array;

  /** `color` overrides the spec's (a head's `encoder.color` overrides the encoder's own). */
  constructor(spec: ImageInputSpec, color: ColorMode = spec.color) {
    this.spec = spec;
    this.color = color;
    this.outChannels = spec.channels;
    if (this.outChannels === 1 && color !== 'gray') throw new RangeError(`a one-channel image input ${spec.name} must be fed gray, not ${color}`);
    this.itemLength = spec.width * spec.height * this.outChannels;
    // (v/255 - mean)/std = v * scale + offset
    this.#scale = Float32Array.from(spec.std, (s) => 1 / (255 * s));
    this.#offset = Float32Array.from(spec.mean, (m, c) => -m / spec.std[c]!);
  }

  /** A batch [N, …] for these crops. The returned array is reused by the next call: consume it first. */
  batch(crops: readonly CropPixels[]): Float32Array {
    const need = crops.length * this.itemLength;
    if (this.#batch.length < need) this.#batch = new Float32Array(need);
    const out = this.#batch.subarray(0, need);
    crops.forEach((c, i) => this.write(c, out, i * this.itemLength));
    return out;
  }

  /** Writes one crop's model input at `offset` in `out`. */
  write(crop: CropPixels, out: Float32Array, offset = 0): void {
    const S = crop.size;
    if (crop.rgb.length !== S * S * 3) throw new RangeError(`crop of size ${S} has ${crop.rgb.length} bytes, expected ${S * S * 3}`);
    const { width: W, height: H, layout } = this.spec;
    const channels = this.color === 'gray' ? 1 : 3;
    if (this.#tapsFor !== S) this.#prepare(S);
    const planes = this.#planes; // channels × S × S, source as float, planar
    const src = crop.rgb;
    const n = S * S;
    if (channels === 1 && S === W && S === H && layout === 'NCHW') {
      // The encoder's case (grey crops cut at its input size): one pass, no planes. fround keeps the grey value
      // a float32, as the planar path stores it, so both paths write the same bits.
      this.#writeGreySameSize(src, n, out, offset);
      return;
    }
    if (channels === 1) {
      for (let p = 0, q = 0; p < n; p++, q += 3) planes[p] = GRAY[0] * src[q]! + GRAY[1] * src[q + 1]! + GRAY[2] * src[q + 2]!;
    } else {
      for (let p = 0, q = 0; p < n; p++, q += 3) {
        planes[p] = src[q]!;
        planes[n + p] = src[q + 1]!;
        planes[2 * n + p] = src[q + 2]!;
      }
    }
    if (S === W && S === H) {
      // Same size: the resize's taps are exactly [1, 0], so skip both passes (the result is bit-identical). This
      // is the encoder's case (crops are cut at its input size) and it runs on the main thread beside
      // onnxruntime, where it was a quarter of the model stage's time.
      this.#writeSameSize(planes, channels, out, offset);
      return;
    }
    const C = this.outChannels;
    const tx = this.#tx!;
    const ty = this.#ty!;
    const rows = this.#rows; // S × W, one channel at a time
    for (let ch = 0; ch < channels; ch++) {
      const plane = ch * n;
      // horizontal pass: S rows × W
      for (let y = 0; y < S; y++) {
        const rowIn = plane + y * S;
        for (let x = 0; x < W; x++) {
          const s0 = tx.start[x]!;
          const k = tx.count[x]!;
          const wb = x * tx.maxTaps;
          let acc = 0;
          for (let j = 0; j < k; j++) acc += planes[rowIn + s0 + j]! * tx.weights[wb + j]!;
          rows[y * W + x] = acc;
        }
      }
      // vertical pass, then normalise and write in layout (grey fills all three channels)
      for (let y = 0; y < H; y++) {
        const s0 = ty.start[y]!;
        const k = ty.count[y]!;
        const wb = y * ty.maxTaps;
        for (let x = 0; x < W; x++) {
          let v = 0;
          for (let j = 0; j < k; j++) v += rows[(s0 + j) * W + x]! * ty.weights[wb + j]!;
          for (let c = channels === 1 ? 0 : ch; c < (channels === 1 ? C : ch + 1); c++) {
            const idx = layout === 'NCHW' ? offset + c * H * W + y * W + x : offset + (y * W + x) * C + c;
            out[idx] = v * this.#scale[c]! + this.#offset[c]!;
          }
        }
      }
    }
  }

  #writeGreySameSize(src: Uint8Array, n: number, out: Float32Array, offset: number): void {
    const [s0, s1, s2] = this.#scale as unknown as [number, number, number];
    const [o0, o1, o2] = this.#offset as unknown as [number, number, number];
    const b1 = offset + n;
    const b2 = offset + 2 * n;
    if (this.outChannels === 1 || (s0 === s1 && s0 === s2 && o0 === o1 && o0 === o2)) {
      // one plane (a folded grey input, the shipped encoder's), or one normalisation for all three: one plane
      // computed, two copied
      for (let p = 0, q = 0; p < n; p++, q += 3) out[offset + p] = Math.fround(GRAY[0] * src[q]! + GRAY[1] * src[q + 1]! + GRAY[2] * src[q + 2]!) * s0 + o0;
      if (this.outChannels === 3) {
        out.copyWithin(b1, offset, b1);
        out.copyWithin(b2, offset, b1);
      }
      return;
    }
    for (let p = 0, q = 0; p < n; p++, q += 3) {
      const g = Math.fround(GRAY[0] * src[q]! + GRAY[1] * src[q + 1]! + GRAY[2] * src[q + 2]!);
      out[offset + p] = g * s0 + o0;
      out[b1 + p] = g * s1 + o1;
      out[b2 + p] = g * s2 + o2;
    }
  }

  #writeSameSize(planes: Float32Array, channels: number, out: Float32Array, offset: number): void {
    const { width: W, height: H, layout } = this.spec;
    const n = W * H;
    const C = this.outChannels;
    for (let c = 0; c < C; c++) {
      const src = (channels === 1 ? 0 : c) * n;
      const scale = this.#scale[c]!;
      const shift = this.#offset[c]!;
      if (layout === 'NCHW') {
        const base = offset + c * n;
        for (let p = 0; p < n; p++) out[base + p] = planes[src + p]! * scale + shift;
      } else {
        for (let p = 0, o = offset + c; p < n; p++, o += C) out[o] = planes[src + p]! * scale + shift;
      }
    }
  }

  #prepare(S: number): void {
    const channels = this.color === 'gray' ? 1 : 3;
    this.#tapsFor = S;
    this.#planes = new Float32Array(channels * S * S);
    this.#rows = new Float32Array(S * this.spec.width);
    this.#tx = resizeTaps(S, this.spec.width);
    this.#ty = resizeTaps(S, this.spec.height);
  }
}
