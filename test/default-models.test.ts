// The shipped models in models/ (the int8 copy of encoder-faceres-emotion-faceapi + cafe-head, exported by the trainer). These must exist in
// the repository: a missing or broken model set fails here, it is never skipped.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lastValueFrom, mergeMap, tap, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFileSource } from '../src/ingest/file-source.js';
import { loadExpressionModel, type ExpressionModel } from '../src/model/expression-model.js';
import { loadFaceDetector, type FaceDetector } from '../src/model/face-detector.js';
import { headReadsImage, resolveModelSet } from '../src/model/manifest.js';
import { cropFace } from '../src/pipeline/crop.js';
import { EXPRESSIONS, type FaceCrop } from '../src/types.js';
import { floatModelsDir } from './helpers/models.js';
import { sharedPath } from './helpers/shared.js';

const modelsDir = join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'models');
const HAPPINESS = EXPRESSIONS.indexOf('happiness');

let model: ExpressionModel;
let detector: FaceDetector;

beforeAll(async () => {
  [model, detector] = await Promise.all([loadExpressionModel({ modelsDir, device: 'cpu' }), loadFaceDetector()]);
});
afterAll(async () => {
  detector?.close();
  await model?.close();
});

/** Face crops of frames [from, to) of d0.mp4, one per frame, framed as the pipeline does. */
async function cropsOver(from: number, to: number): Promise<FaceCrop[]> {
  const source = createFileSource({ path: sharedPath('data', 'videos', 'd0.mp4') });
  const crops = await lastValueFrom(
    source.frames().pipe(
      mergeMap(async (frame): Promise<FaceCrop[]> => {
        try {
          if (frame.frameId < from || frame.frameId >= to) return [];
          const [face] = await detector.detect(frame);
          if (!face) return [];
          const rgb = await cropFace(frame, face.box, model.cropSize, 1.3);
          return [{ streamId: 'd0', frameId: frame.frameId, pts: frame.pts, trackId: 't1', box: face.box, size: model.cropSize, rgb }];
        } finally {
          source.release(frame);
        }
      }, 1),
      mergeMap((c) => c),
      toArray(),
      tap((c) => expect(c.length).toBe(to - from)),
    ),
  );
  return crops;
}

/** Mean probabilities over frames [from, to) of d0.mp4. */
async function meanOver(from: number, to: number): Promise<Float32Array> {
  const probs = await model.infer(await cropsOver(from, to));
  const mean = new Float32Array(EXPRESSIONS.length);
  for (const p of probs) p.forEach((v, k) => (mean[k] = mean[k]! + v / probs.length));
  return mean;
}

describe('default models (models/)', () => {
  it('ships the int8 encoder, cafe-head.onnx and the face detectors and nothing else, manifests that check out, 16 MB at most; picks int8 on cpu, float on a GPU where it is', async () => {
    const detector = ['face-detector-full.onnx', 'face-detector-full.onnx.json', 'face-detector-short.onnx', 'face-detector-short.onnx.json'].map((f) => join('detector', f));
    const shipped = ['encoder-faceres-emotion-faceapi-int8.onnx', 'encoder-faceres-emotion-faceapi-int8.onnx.json', 'cafe-head.onnx', 'cafe-head.onnx.json', 'MODEL_CARD.md', ...detector];
    // every retrain adds the whole file to git history, and a checkout carried to a lent GPU needs room; the float
    // encoder beside them is built by scripts/setup-trainer.sh and is not shipped (package.json `files`, .gitignore)
    let total = 0;
    for (const f of shipped) {
      expect(existsSync(join(modelsDir, f)), `models/${f}`).toBe(true);
      total += statSync(join(modelsDir, f)).size;
    }
    // nothing else: the float encoder lives in .cache/models-float (scripts/setup-trainer.sh), so models/ on disk is what ships
    expect(readdirSync(modelsDir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => relative(modelsDir, join(e.parentPath, e.name))).sort()).toEqual([...shipped].sort());
    expect(total).toBeLessThanOrEqual(16 * 1024 * 1024);
    const set = await resolveModelSet(modelsDir);
    expect(set.precision).toBe('int8');
    expect(set.head.modelPath).toBe(join(modelsDir, 'cafe-head.onnx'));
    expect(set.encoder.modelPath).toBe(join(modelsDir, 'encoder-faceres-emotion-faceapi-int8.onnx'));
    expect(set.encoder.manifest.quantized_from?.sha256).toBe(set.head.manifest.encoder.sha256);
    expect(set.head.manifest.output.classes).toEqual(EXPRESSIONS);
    expect(model.precision).toBe('int8');
    // a GPU takes the float encoder where it is (the float set), and the int8 copy where only that is (models/)
    expect((await resolveModelSet(modelsDir, 'auto', 'cuda')).precision).toBe('int8');
    const onGpu = await resolveModelSet(floatModelsDir(), 'auto', 'cuda');
    expect(onGpu.precision).toBe('float');
    expect(onGpu.encoder.modelPath).toBe(join(floatModelsDir(), 'encoder-faceres-emotion-faceapi.onnx'));
  });

  it('feeds the head zeros for the image its mask never reads, and gets the very same probabilities as with the image', async () => {
    const set = await resolveModelSet(modelsDir);
    expect(headReadsImage(set.head.manifest)).toBe(false); // mask from features: the image is multiplied by zero
    const dir = mkdtempSync(join(tmpdir(), 'cafe-head-image-'));
    try {
      for (const f of readdirSync(modelsDir, { withFileTypes: true })) if (f.isFile()) copyFileSync(join(modelsDir, f.name), join(dir, f.name));
      const manifest = join(dir, 'cafe-head.onnx.json');
      const m = JSON.parse(readFileSync(manifest, 'utf8')) as Record<string, unknown>;
      delete m.variant; // a head that does not say: its image is resized and fed
      writeFileSync(manifest, JSON.stringify(m));
      const withImage = await loadExpressionModel({ modelsDir: dir, device: 'cpu' });
      try {
        const crops = await cropsOver(30, 38);
        const [zeros, fed] = [await model.infer(crops), await withImage.infer(crops)];
        expect(fed.map((p) => Array.from(p))).toEqual(zeros.map((p) => Array.from(p)));
        expect(new Set(zeros.map((p) => p[HAPPINESS])).size).toBeGreaterThan(1); // different frames, different readings
      } finally {
        await withImage.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loads on cpu and reads a batch of face crops into probability vectors', async () => {
    expect(model.provider).toBe('cpu');
    expect(model.classes).toEqual(EXPRESSIONS);
    expect(model.cropSize).toBeGreaterThanOrEqual(48);
    const mean = await meanOver(0, 6);
    expect(mean.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
  });

  it('reads the broad smile in the middle of d0.mp4 as happiness, and the neutral start as less happy', async () => {
    const neutral = await meanOver(0, 8);
    const smile = await meanOver(35, 45);
    const top = smile.indexOf(Math.max(...smile));
    expect(EXPRESSIONS[top]).toBe('happiness');
    expect(smile[HAPPINESS]!).toBeGreaterThan(neutral[HAPPINESS]! + 0.2);
  });
});
