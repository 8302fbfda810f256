// The int8 encoder the CPU runs by default (models/encoder-faceres-emotion-faceapi-int8.onnx, `trainer
// quantize-encoder`) against the float encoder the head was trained on (.cache/models-float, built by
// scripts/setup-trainer.sh), on
// real faces framed as the pipeline frames them: Taiwanese studio photos (a domain the calibration never saw,
// colour, uncropped) through the product's detector and crop, then both model sets on the same crops.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadImageFrame } from '../src/ingest/image.js';
import { loadExpressionModel, type ExpressionModel } from '../src/model/expression-model.js';
import { loadFaceDetector, type FaceDetector } from '../src/model/face-detector.js';
import { cropFace } from '../src/pipeline/crop.js';
import type { FaceCrop } from '../src/types.js';
import { REAL_MODELS_DIR, floatModelsDir } from './helpers/models.js';
import { sharedPath } from './helpers/shared.js';

const PHOTOS = 240;

let int8: ExpressionModel;
let float: ExpressionModel;
let detector: FaceDetector;
const crops: FaceCrop[] = [];

beforeAll(async () => {
  [int8, float, detector] = await Promise.all([
    loadExpressionModel({ modelsDir: REAL_MODELS_DIR, device: 'cpu', precision: 'int8' }),
    loadExpressionModel({ modelsDir: floatModelsDir(), device: 'cpu', precision: 'float' }),
    loadFaceDetector(),
  ]);
  const dir = sharedPath('data', 'taiwanese', 'faces_256x256');
  const all = readdirSync(dir).filter((f) => f.endsWith('.jpg')).sort();
  // spread over the whole set: every performer and expression, not the first few people
  const picked = Array.from({ length: PHOTOS }, (_, i) => all[Math.floor((i * all.length) / PHOTOS)]!);
  for (const name of picked) {
    const frame = await loadImageFrame(join(dir, name));
    const [face] = await detector.detect(frame);
    if (!face) continue;
    const rgb = await cropFace(frame, face.box, int8.cropSize, 1.3);
    crops.push({ streamId: name, frameId: 0, pts: 0, trackId: 't1', box: face.box, size: int8.cropSize, rgb });
  }
}, 300_000);
afterAll(async () => {
  detector?.close();
  await Promise.all([int8?.close(), float?.close()]);
});

describe('int8 encoder', () => {
  it('is what the cpu runs by default, and the float encoder is what it was quantised from', () => {
    expect(int8.precision).toBe('int8');
    expect(float.precision).toBe('float');
    expect(int8.cropSize).toBe(float.cropSize);
  });

  it('gives the float model\'s label on at least 99 % of real crops, probabilities within 0.25', async () => {
    expect(crops.length).toBeGreaterThanOrEqual(PHOTOS - 5);
    const [a, b] = [await int8.infer(crops), await float.infer(crops)];
    let agree = 0;
    let maxDiff = 0;
    const argmax = (p: Float32Array): number => p.indexOf(Math.max(...p));
    for (let i = 0; i < crops.length; i++) {
      if (argmax(a[i]!) === argmax(b[i]!)) agree++;
      for (let k = 0; k < a[i]!.length; k++) maxDiff = Math.max(maxDiff, Math.abs(a[i]![k]! - b[i]![k]!));
    }
    expect(agree / crops.length).toBeGreaterThanOrEqual(0.99);
    expect(maxDiff).toBeLessThan(0.25);
    // and it is not the float model under another name
    expect(maxDiff).toBeGreaterThan(1e-4);
  });
});
