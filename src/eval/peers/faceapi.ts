// Peer: face-api.js's FaceExpressionNet (@vladmandic/face-api, MIT; weights in its model/ folder), on the
// project's tfjs-core with the wasm backend. face-api does its own preprocessing from a 0–255 RGB tensor: pad to
// a square, bilinear resize to 112×112, subtract its channel means, divide by 255. Its classes, in output order:
// neutral, happy, sad, angry, fearful, disgusted, surprised.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { ModelError, errorLine } from '../../errors.js';
import { initTfjsWasm } from '../../model/tfjs-detector.js';
import type { CropClassifier } from '../evaluate-set.js';
import { mapPeerClasses } from './map-classes.js';
import { installChainedOps, requireWithTfjsCore } from './tfjs-compat.js';

export const FACEAPI_CLASSES = ['neutral', 'happy', 'sad', 'angry', 'fearful', 'disgusted', 'surprised'] as const;

interface FaceApi {
  FACE_EXPRESSION_LABELS: string[];
  nets: {
    faceExpressionNet: {
      loadFromDisk(dir: string): Promise<void>;
      predictExpressions(input: tf.Tensor3D | tf.Tensor3D[]): Promise<Record<string, number> | Record<string, number>[]>;
    };
  };
}

export async function loadFaceApiPeer(): Promise<CropClassifier> {
  const require = createRequire(import.meta.url);
  let dir = '';
  let faceapi: FaceApi;
  try {
    dir = join(dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
    await initTfjsWasm();
    installChainedOps();
    faceapi = requireWithTfjsCore<FaceApi>('@vladmandic/face-api/dist/face-api.node-wasm.js');
    await faceapi.nets.faceExpressionNet.loadFromDisk(dir);
  } catch (err) {
    throw new ModelError('CS_ERR_MODEL_LOAD', dir || '@vladmandic/face-api', `face-api expression net did not load (a dev dependency): ${errorLine(err)}`, { cause: err });
  }
  if (faceapi.FACE_EXPRESSION_LABELS.join() !== FACEAPI_CLASSES.join()) {
    throw new ModelError('CS_ERR_MODEL_MANIFEST', dir, `face-api labels changed: ${faceapi.FACE_EXPRESSION_LABELS.join(', ')}`);
  }
  const net = faceapi.nets.faceExpressionNet;
  return {
    name: 'faceapi (@vladmandic/face-api FaceExpressionNet)',
    classify: async (crops) => {
      const out: Float32Array[] = [];
      // One crop per call: face-api returns a plain object for a single input, and batching buys little on wasm.
      for (const c of crops) {
        const t = tf.tensor3d(Float32Array.from(c.rgb), [c.size, c.size, 3], 'float32');
        try {
          const r = (await net.predictExpressions(t)) as Record<string, number>;
          out.push(mapPeerClasses(FACEAPI_CLASSES.map((k) => r[k] ?? 0), FACEAPI_CLASSES));
        } finally {
          t.dispose();
        }
      }
      return out;
    },
    close: async () => undefined,
  };
}
