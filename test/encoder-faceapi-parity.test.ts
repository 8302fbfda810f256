// The default encoder's third branch is face-api.js's FaceExpressionNet, rebuilt in ONNX from its weights
// manifest by trainer/cafe_models/faceapi_expression.py (face-api ships no graph, only weights and the
// architecture in its source). It must compute what face-api itself computes: the same real faces through
// face-api (tfjs, wasm) and through the ONNX graph, the 7 class probabilities compared.
//
// The graph makes face-api's 112 px input as the 2×2 average of the 224 crop. Feeding it a 224 image made by
// repeating every pixel of a 112 image 2×2 makes that average exactly the 112 image face-api is given.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { CropClassifier } from '../src/eval/evaluate-set.js';
import { FACEAPI_CLASSES, loadFaceApiPeer } from '../src/eval/peers/faceapi.js';
import { mapPeerClasses } from '../src/eval/peers/map-classes.js';
import { floatModelsDir } from './helpers/models.js';
import { sharedPath } from './helpers/shared.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const onnxPath = join(floatModelsDir(), 'encoder-faceres-emotion-faceapi.onnx');
const IMAGES = ['face1.png', 'face2.png', 'angry.jpg', 'surprised.jpg'];
const SMALL = 112;
const SIZE = 224;
const DIM = 1024 + 263 + 263;

async function load112(name: string): Promise<Uint8Array> {
  const { data } = await sharp(sharedPath('data', 'images', name))
    .removeAlpha()
    .toColourspace('srgb')
    .resize(SMALL, SMALL, { fit: 'fill' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return new Uint8Array(data);
}

/** 112 px HWC RGB → 224 px NCHW float, every pixel repeated 2×2. */
function doubled(rgb: Uint8Array): Float32Array {
  const out = new Float32Array(3 * SIZE * SIZE);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const s = ((y >> 1) * SMALL + (x >> 1)) * 3;
      for (let c = 0; c < 3; c++) out[c * SIZE * SIZE + y * SIZE + x] = rgb[s + c]!;
    }
  }
  return out;
}

function softmax(logits: ArrayLike<number>): number[] {
  const m = Math.max(...Array.from(logits));
  const e = Array.from(logits, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

describe('encoder-faceres-emotion-faceapi.onnx: the face-api branch vs face-api itself', () => {
  let session: ort.InferenceSession;
  let faceapi: CropClassifier;

  beforeAll(async () => {
    session = await ort.InferenceSession.create(onnxPath, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
    faceapi = await loadFaceApiPeer();
  });

  afterAll(async () => {
    await session?.release();
    await faceapi?.close();
  });

  it('has a manifest naming face-api as the source of its last 263 features', () => {
    const manifest = JSON.parse(readFileSync(`${onnxPath}.json`, 'utf8')) as { output: { dim: number }; source: string };
    expect(manifest.output.dim).toBe(DIM);
    expect(manifest.source).toMatch(/face-api/);
  });

  it('gives face-api\'s class probabilities on real faces', async () => {
    const smalls = await Promise.all(IMAGES.map(load112));
    const n = smalls.length;
    const batch = new Float32Array(n * 3 * SIZE * SIZE);
    smalls.forEach((s, i) => batch.set(doubled(s), i * 3 * SIZE * SIZE));
    const out = await session.run({ image: new ort.Tensor('float32', batch, [n, 3, SIZE, SIZE]) });
    const features = out['features']!;
    expect(features.dims).toEqual([n, DIM]);
    const all = features.data as Float32Array;
    const want = await faceapi.classify(smalls.map((rgb) => ({ size: SMALL, rgb })));

    let maxAbs = 0;
    const tops = new Set<number>();
    for (let b = 0; b < n; b++) {
      const logits = all.subarray((b + 1) * DIM - 7, (b + 1) * DIM);
      const got = mapPeerClasses(softmax(logits), FACEAPI_CLASSES);
      const ref = want[b]!;
      for (let k = 0; k < got.length; k++) maxAbs = Math.max(maxAbs, Math.abs(got[k]! - ref[k]!));
      const top = ref.indexOf(Math.max(...ref));
      expect(got.indexOf(Math.max(...got))).toBe(top);
      tops.add(top);
    }
    console.info(`face-api branch parity: max |Δp| ${maxAbs.toExponential(2)} over ${n} faces`);
    // the faces must not all read alike, or a constant output would pass
    expect(tops.size).toBeGreaterThan(1);
    // face-api's weights are 8-bit; stored as float16 they move its probabilities by up to 1.3e-3 (measured
    // against a float32 build of the same graph), which is the whole of the difference seen here
    expect(maxAbs).toBeLessThan(3e-3);
  });
});
