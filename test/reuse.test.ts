// Not re-reading unchanged faces (src/pipeline/reuse.ts): the thumbnail distance, when a track's last reading is
// carried forward and when the model must read again; and through runPipeline, what the counters say.
import { Observable } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { ReadReuse, change, thumbnail } from '../src/pipeline/reuse.js';
import { runPipeline } from '../src/pipeline/run.js';
import { EXPRESSIONS, type FaceCrop, type Frame, type FrameSource } from '../src/types.js';
import { memorySink } from './helpers/sinks.js';

const SIZE = 32;

/** A crop whose left half is `left` and right half `right` (grey levels), plus `light` everywhere. */
function crop(frameId: number, pts: number, opts: { left?: number; right?: number; light?: number; trackId?: string } = {}): FaceCrop {
  const rgb = Buffer.alloc(SIZE * SIZE * 3);
  for (let y = 0; y < SIZE; y++)
    for (let x = 0; x < SIZE; x++) rgb.fill((x < SIZE / 2 ? (opts.left ?? 80) : (opts.right ?? 160)) + (opts.light ?? 0), (y * SIZE + x) * 3, (y * SIZE + x) * 3 + 3);
  return { streamId: 's', frameId, pts, trackId: opts.trackId ?? 't1', box: { x: 0, y: 0, width: SIZE, height: SIZE }, size: SIZE, rgb };
}

const probs = (k: number): Float32Array => Float32Array.from(EXPRESSIONS, (_, i) => (i === k ? 0.7 : 0.05));
const reading = (c: FaceCrop, p: Float32Array) => ({ streamId: c.streamId, frameId: c.frameId, pts: c.pts, trackId: c.trackId, box: c.box, probabilities: p });

describe('thumbnail change', () => {
  it('is 0 for the same crop and for a uniform change of light, and grows with a change of the face', () => {
    const a = thumbnail(crop(0, 0).rgb, SIZE);
    expect(a).toHaveLength(256);
    expect(change(a, thumbnail(crop(0, 0).rgb, SIZE))).toBe(0);
    expect(change(a, thumbnail(crop(0, 0, { light: 40 }).rgb, SIZE))).toBeCloseTo(0, 4);
    const small = change(a, thumbnail(crop(0, 0, { left: 82 }).rgb, SIZE));
    const large = change(a, thumbnail(crop(0, 0, { left: 120 }).rgb, SIZE));
    expect(small).toBeGreaterThan(0);
    expect(large).toBeGreaterThan(10 * small);
  });
});

describe('thumbnail', () => {
  it('is the mean grey level of each of 16×16 cells, for sides that divide by 16 and sides that do not', () => {
    for (const size of [224, 37, 9]) {
      const rgb = Uint8Array.from({ length: size * size * 3 }, (_, i) => (i * 2654435761) >>> 24);
      const sum = new Array<number>(256).fill(0);
      const n = new Array<number>(256).fill(0);
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++) {
          const c = Math.floor((y * 16) / size) * 16 + Math.floor((x * 16) / size);
          const i = (y * size + x) * 3;
          sum[c]! += 0.299 * rgb[i]! + 0.587 * rgb[i + 1]! + 0.114 * rgb[i + 2]!;
          n[c]!++;
        }
      const t = thumbnail(rgb, size);
      for (let c = 0; c < 256; c++) expect(t[c]).toBeCloseTo(n[c] === 0 ? 0 : sum[c]! / n[c]!, 3);
    }
  });
});

describe('ReadReuse', () => {
  /** decide() with the readings it hands over collected per frame. */
  function reuser(maxChange = 2) {
    const r = new ReadReuse({ maxChange, maxAgeSeconds: 1 });
    const got = new Map<number, Float32Array>();
    const put = (x: { frameId: number; probabilities: Float32Array }): void => void got.set(x.frameId, x.probabilities);
    return {
      r,
      got,
      decide: (c: FaceCrop) => r.decide(c, put),
      read: (c: FaceCrop, p: Float32Array) => r.read(reading(c, p)).forEach(put),
    };
  }

  it('carries the last reading forward for an unchanged face, and reads a changed one or after maxAgeSeconds', () => {
    const { r, got, decide, read } = reuser();
    const first = crop(0, 0);
    expect(decide(first)).toBe('read');
    expect(decide(crop(1, 0.1))).toBe('carried'); // waits for the first read: the choice never depends on timing
    expect(got.size).toBe(0);
    read(first, probs(3));
    expect(got.get(1)?.[3]).toBeCloseTo(0.7); // handed over when the first read came back
    expect(decide(crop(2, 0.2))).toBe('carried');
    expect(got.get(2)).toBe(got.get(1)); // at once, now that it is known
    expect(decide(crop(5, 0.5, { left: 120 }))).toBe('read'); // the face changed
    expect(decide(crop(6, 0.6, { left: 120 }))).toBe('carried');
    read(crop(5, 0.5), probs(5));
    expect(got.get(6)?.[5]).toBeCloseTo(0.7); // frame 5's reading, not frame 0's
    expect(decide(crop(8, 1.6, { left: 120 }))).toBe('read'); // a read at least every maxAgeSeconds
    expect(decide(crop(9, 1.7, { trackId: 't2' }))).toBe('read'); // per track
    expect(r.stats()).toEqual({ read: 4, reused: 3 });
  });

  it('a replaced reference still hands its reading to the crops that waited for it; maxChange 0 reads every crop', () => {
    const { got, decide, read } = reuser();
    const a = crop(0, 0);
    decide(a);
    decide(crop(1, 0.1)); // waits for frame 0
    decide(crop(2, 0.2, { left: 140 })); // changed: frame 2 is the new reference
    read(a, probs(3));
    expect(got.get(1)?.[3]).toBeCloseTo(0.7);
    expect(decide(crop(3, 0.3, { left: 140 }))).toBe('carried');
    expect(got.has(3)).toBe(false); // frame 2's reading is not back yet
    const off = reuser(0);
    off.decide(a);
    off.read(a, probs(3));
    expect(off.decide(crop(1, 0.1))).toBe('read');
    expect(off.r.stats()).toEqual({ read: 2, reused: 0 });
  });
});

/** Still frames (the same picture every frame) with one face. */
function stillSource(frames: number, fps: number): FrameSource {
  const W = 64;
  const data = Buffer.alloc(W * W * 3);
  for (let i = 0; i < data.length; i += 3) data.fill((i / 3) % W < W / 2 ? 60 : 180, i, i + 3);
  return {
    streamId: 'still',
    info: async () => ({ streamId: 'still', source: 'still.mp4', kind: 'file', clock: 'media', width: W, height: W, fps }),
    skipped: () => 0,
    release: () => undefined,
    frames: () =>
      new Observable<Frame>((sub) => {
        for (let i = 0; i < frames; i++) sub.next({ streamId: 'still', frameId: i, pts: i / fps, width: W, height: W, data });
        sub.complete();
      }),
  };
}

describe('runPipeline with reuse', () => {
  it('reads a still face about once a second by default, every frame with maxChange 0, and the timeline is the same', async () => {
    const run = async (options: object) => {
      const calls: number[] = [];
      const sink = memorySink();
      const summary = await runPipeline({
        sources: [stillSource(50, 10)],
        detector: { detect: async () => [{ box: { x: 16, y: 16, width: 32, height: 32 }, score: 0.9 }] },
        model: {
          cropSize: 24,
          infer: async (crops: FaceCrop[]) => {
            calls.push(crops.length);
            return crops.map(() => probs(3));
          },
        },
        sinks: [sink],
        options,
      });
      const labels = sink.events.flatMap((e) => (e.type === 'face.observation' ? [e.label] : []));
      return { summary, read: calls.reduce((a, b) => a + b, 0), labels };
    };
    const reuse = await run({ batch: { maxWaitMs: 0 } });
    const every = await run({ batch: { maxWaitMs: 0 }, reuse: { maxChange: 0 } });
    expect(every.read).toBe(every.summary.crops);
    expect(every.summary.reused).toBe(0);
    expect(reuse.summary.crops).toBe(every.summary.crops);
    expect(reuse.summary.reused).toBe(reuse.summary.crops - reuse.read);
    // 5 s at 10 fps: a read at least every second, at 0, 1, 2, 3 and 4 s, whatever the model's speed
    expect(reuse.read).toBe(5);
    expect(reuse.labels).toEqual(every.labels);
  });
});
