// Manifest-driven preprocessing on small crops whose outputs are worked out by hand (the resize is PyTorch's
// antialiased bilinear, i.e. PIL's triangle filter, as the trainer uses).
import { describe, expect, it } from 'vitest';
import type { ImageInputSpec } from '../src/model/manifest.js';
import { ImagePreprocessor, resizeTaps } from '../src/model/preprocess.js';

const spec = (over: Partial<ImageInputSpec>): ImageInputSpec => ({
  name: 'image',
  layout: 'NCHW',
  height: 2,
  width: 2,
  color: 'rgb',
  channels: 3,
  mean: [0, 0, 0],
  std: [1, 1, 1],
  resize: 'bilinear',
  ...over,
});

/** size × size RGB crop from a per-pixel function. */
function crop(size: number, px: (x: number, y: number) => [number, number, number]): { size: number; rgb: Uint8Array } {
  const rgb = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) rgb.set(px(x, y), (y * size + x) * 3);
  return { size, rgb };
}

function expectClose(got: ArrayLike<number>, want: number[]): void {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => expect(got[i]).toBeCloseTo(w, 5));
}

describe('resizeTaps', () => {
  it('shrinks 4 → 2 with the triangle filter widened to the scale', () => {
    // out 0: centre 1, taps 0..2 at distances 0.25, 0.25, 0.75 (in units of 2 px) → 0.75, 0.75, 0.25 → /1.75
    // out 1: centre 3, taps 1..3 → 0.25, 0.75, 0.75 → /1.75
    const t = resizeTaps(4, 2);
    expect(Array.from(t.start)).toEqual([0, 1]);
    expect(Array.from(t.count)).toEqual([3, 3]);
    expectClose(t.weights.subarray(0, 3), [3 / 7, 3 / 7, 1 / 7]);
    expectClose(t.weights.subarray(t.maxTaps, t.maxTaps + 3), [1 / 7, 3 / 7, 3 / 7]);
  });

  it('enlarges 2 → 4 as plain half-pixel bilinear, clamped at the edges', () => {
    const t = resizeTaps(2, 4);
    const row = (i: number): number[] => {
      const w = [0, 0];
      for (let j = 0; j < t.count[i]!; j++) w[t.start[i]! + j]! += t.weights[i * t.maxTaps + j]!;
      return w;
    };
    expectClose(row(0), [1, 0]);
    expectClose(row(1), [0.75, 0.25]);
    expectClose(row(2), [0.25, 0.75]);
    expectClose(row(3), [0, 1]);
  });
});

describe('ImagePreprocessor', () => {
  it('worked example: 4×4 RGB crop → 2×2 NCHW, /255', () => {
    // R = 28x + 7y is linear, so each output is 28·X + 7·Y with X, Y = (0·3 + 1·3 + 2·1)/7 = 5/7 or
    // (1·1 + 2·3 + 3·3)/7 = 16/7: R = [[25, 69], [36, 80]]. G is 255 everywhere, B is 0.
    const c = crop(4, (x, y) => [28 * x + 7 * y, 255, 0]);
    const out = new ImagePreprocessor(spec({})).batch([c]);
    expectClose(out, [25 / 255, 69 / 255, 36 / 255, 80 / 255, 1, 1, 1, 1, 0, 0, 0, 0]);
  });

  it('worked example: grey, mean/std and NHWC on a crop already at the input size', () => {
    // pixels: red, green / blue, white. Grey = 0.299 R + 0.587 G + 0.114 B, the same on all 3 channels.
    const colours: [number, number, number][] = [
      [255, 0, 0],
      [0, 255, 0],
      [0, 0, 255],
      [255, 255, 255],
    ];
    const c = crop(2, (x, y) => colours[y * 2 + x]!);
    const mean: [number, number, number] = [0.485, 0.456, 0.406];
    const std: [number, number, number] = [0.229, 0.224, 0.225];
    const out = new ImagePreprocessor(spec({ layout: 'NHWC', color: 'rgb', mean, std }), 'gray').batch([c]);
    const want: number[] = [];
    for (const g of [0.299, 0.587, 0.114, 1]) for (let ch = 0; ch < 3; ch++) want.push((g - mean[ch]!) / std[ch]!);
    expectClose(out, want);
  });

  it('worked example: 2×2 → 4×4 upscale, rows constant', () => {
    const c = crop(2, (x) => [x === 0 ? 0 : 200, 0, 0]);
    const out = new ImagePreprocessor(spec({ width: 4, height: 4 })).batch([c]);
    const row = [0, 50, 150, 200].map((v) => v / 255);
    expectClose(out.subarray(0, 16), [...row, ...row, ...row, ...row]);
  });

  it('lays out a batch crop after crop and reuses its buffers correctly between calls', () => {
    const p = new ImagePreprocessor(spec({}));
    const a = crop(4, () => [255, 0, 0]);
    const b = crop(4, () => [0, 0, 255]);
    const both = Array.from(p.batch([a, b]));
    expect(both).toHaveLength(24);
    expectClose(both.slice(0, 12), [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    expectClose(both.slice(12), [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]);
    expectClose(p.batch([b]), [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]);
    // another crop size on the same preprocessor
    expectClose(p.batch([crop(2, () => [51, 51, 51])]), Array(12).fill(0.2));
  });

  it('the one-pass grey NCHW path (the encoder\'s) writes the same bits as the planar path (NHWC, transposed)', () => {
    const S = 16;
    const c = crop(S, (x, y) => [(x * 37 + y * 11) % 256, (x * 5 + y * 91) % 256, (x * y * 13) % 256]);
    const mean: [number, number, number] = [0.485, 0.456, 0.406];
    const std: [number, number, number] = [0.229, 0.224, 0.225];
    const nchw = new ImagePreprocessor(spec({ width: S, height: S, layout: 'NCHW', mean, std }), 'gray').batch([c]);
    const nhwc = new ImagePreprocessor(spec({ width: S, height: S, layout: 'NHWC', mean, std }), 'gray').batch([c]);
    const transposed = new Float32Array(nchw.length);
    for (let p = 0; p < S * S; p++) for (let ch = 0; ch < 3; ch++) transposed[ch * S * S + p] = nhwc[p * 3 + ch]!;
    expect(Array.from(nchw)).toEqual(Array.from(transposed));
    expect(new Set(nchw).size).toBeGreaterThan(100); // a real image, not a constant
  });

  it('a one-channel (folded grey) input gets channel 0 of the three-channel grey input, bit for bit, on every path', () => {
    const S = 16;
    const c = crop(S, (x, y) => [(x * 37 + y * 11) % 256, (x * 5 + y * 91) % 256, (x * y * 13) % 256]);
    const norm = { mean: [0.2, 0.2, 0.2] as [number, number, number], std: [0.5, 0.5, 0.5] as [number, number, number] };
    // same size NCHW (the encoder's one-pass path), same size NHWC (planar), a shrink and an enlargement (resize path)
    for (const [size, layout] of [[S, 'NCHW'], [S, 'NHWC'], [8, 'NCHW'], [24, 'NHWC']] as const) {
      const three = new ImagePreprocessor(spec({ width: size, height: size, layout, ...norm }), 'gray');
      const one = new ImagePreprocessor(spec({ width: size, height: size, layout, channels: 1, ...norm }), 'gray');
      expect(one.itemLength).toBe(size * size);
      const a = three.batch([c, c]);
      const b = one.batch([c, c]);
      expect(b.length).toBe(2 * size * size);
      const want = new Float32Array(2 * size * size);
      for (let i = 0; i < 2; i++)
        for (let p = 0; p < size * size; p++) want[i * size * size + p] = layout === 'NCHW' ? a[i * 3 * size * size + p]! : a[i * 3 * size * size + p * 3]!;
      expect(Array.from(b), `${size} ${layout}`).toEqual(Array.from(want));
      expect(new Set(b).size).toBeGreaterThan(20);
    }
    expect(() => new ImagePreprocessor(spec({ channels: 1 }), 'rgb')).toThrow(/must be fed gray/);
  });

  it('rejects a crop whose bytes do not match its size', () => {
    expect(() => new ImagePreprocessor(spec({})).batch([{ size: 4, rgb: new Uint8Array(10) }])).toThrow(RangeError);
  });
});
