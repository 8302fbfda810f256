// Peer: faceplugin's fr_expression.onnx (npm `faceplugin`, MIT), on onnxruntime-node's CPU provider.
// Preprocessing as faceplugin's lib/fr_expression.js: the face resized to 224×224, RGB / 255, NCHW, input
// `input` (batch 1); output `output` is logits (softmax applied here). Class order from faceplugin's demo app:
// angry, disgust, fear, smile (happy), sad, surprise, neutral (FER2013's order).
// faceplugin frames its crop from the box's top-left corner (1.2 × width and height); here every peer reads
// the same crops as our model, so the comparison is of models, not of framings.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { ModelError, errorLine } from '../../errors.js';
import { createSession, ort } from '../../model/onnx-runtime.js';
import type { CropClassifier } from '../evaluate-set.js';
import { mapPeerClasses } from './map-classes.js';

export const FR_EXPRESSION_CLASSES = ['angry', 'disgust', 'fear', 'smile', 'sad', 'surprise', 'neutral'] as const;
const SIDE = 224;

export async function loadFrExpressionPeer(): Promise<CropClassifier> {
  const require = createRequire(import.meta.url);
  let path = 'faceplugin/model/fr_expression.onnx';
  let session: ort.InferenceSession;
  try {
    path = join(dirname(require.resolve('faceplugin/package.json')), 'model', 'fr_expression.onnx');
    session = await createSession(path, 'cpu', undefined);
  } catch (err) {
    throw new ModelError('CS_ERR_MODEL_LOAD', path, `faceplugin fr_expression did not load: ${path} (${errorLine(err)})`, { cause: err });
  }
  return {
    name: 'fr_expression (faceplugin)',
    classify: async (crops) => {
      const out: Float32Array[] = [];
      const plane = SIDE * SIDE;
      const input = new Float32Array(3 * plane);
      // the model's input is fixed at batch 1
      for (const c of crops) {
        const rgb = c.size === SIDE ? c.rgb : await sharp(c.rgb, { raw: { width: c.size, height: c.size, channels: 3 } }).resize(SIDE, SIDE, { fit: 'fill' }).raw().toBuffer();
        for (let p = 0; p < plane; p++) for (let ch = 0; ch < 3; ch++) input[ch * plane + p] = rgb[p * 3 + ch]! / 255;
        const result = await session.run({ input: new ort.Tensor('float32', input, [1, 3, SIDE, SIDE]) });
        const logits = result['output'];
        if (!logits || logits.dims[1] !== FR_EXPRESSION_CLASSES.length) throw new Error(`fr_expression output has shape [${logits?.dims.join(', ')}]`);
        out.push(mapPeerClasses(softmax(logits.data as Float32Array), FR_EXPRESSION_CLASSES));
        logits.dispose();
      }
      return out;
    },
    close: () => session.release(),
  };
}

function softmax(x: ArrayLike<number>): Float32Array {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) max = Math.max(max, x[i]!);
  const out = new Float32Array(x.length);
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += out[i] = Math.exp(x[i]! - max);
  for (let i = 0; i < x.length; i++) out[i]! /= sum;
  return out;
}
