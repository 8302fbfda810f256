// face-api.js (@vladmandic/face-api, a dev dependency) as a reference point for the pipeline bench: its SSD
// MobileNet v1 face detector + its expression net, on tfjs with the wasm backend, frame by frame.
//
// Its Node wasm build requires the umbrella '@tensorflow/tfjs' package, which this project does not install
// (it pulls tfjs-node, whose install downloads libtensorflow). The build only needs tfjs-core's ops (with the
// chained tensor methods) and the converter, so that one require is answered with those, from the same
// tfjs-core the product uses: both run on the same wasm backend in the same process. Weights are read from the
// package's model/ folder; nothing is fetched.
import { readFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Box, Frame } from '../src/types.js';
import { initTfjsWasm } from '../src/model/tfjs-detector.js';

const require = createRequire(import.meta.url);

export interface FaceApiFace {
  box: Box;
  score: number;
  expression: string;
}

export interface FaceApi {
  detect(frame: Frame): Promise<FaceApiFace[]>;
}

/* eslint-disable @typescript-eslint/no-explicit-any -- face-api's bundle is untyped here (its types import '@tensorflow/tfjs') */
export async function loadFaceApi(minConfidence = 0.5): Promise<FaceApi> {
  await initTfjsWasm();
  const M = Module as unknown as { _resolveFilename: (request: string, ...rest: unknown[]) => string };
  const resolve = M._resolveFilename;
  const shim = join(dirname(new URL(import.meta.url).pathname), 'tfjs-shim.cjs');
  M._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]) {
    return resolve.call(this, request === '@tensorflow/tfjs' ? shim : request, ...rest);
  };
  let faceapi: any;
  try {
    faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
  } finally {
    M._resolveFilename = resolve;
  }
  const tf = faceapi.tf;
  const dir = join(dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
  const load = async (net: any, name: string): Promise<void> => {
    const manifest = JSON.parse(readFileSync(join(dir, `${name}-weights_manifest.json`), 'utf8')) as { weights: unknown[] }[];
    const bin = readFileSync(join(dir, `${name}.bin`));
    const weights = manifest.flatMap((g) => g.weights);
    await net.loadFromWeightMap(tf.io.decodeWeights(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength), weights));
  };
  await load(faceapi.nets.ssdMobilenetv1, 'ssd_mobilenetv1_model');
  await load(faceapi.nets.faceExpressionNet, 'face_expression_model');
  const options = new faceapi.SsdMobilenetv1Options({ minConfidence });
  return {
    async detect(frame: Frame): Promise<FaceApiFace[]> {
      const input = tf.tensor3d(frame.data, [frame.height, frame.width, 3], 'int32');
      try {
        const found: any[] = await faceapi.detectAllFaces(input, options).withFaceExpressions();
        return found.map((r) => {
          const b = r.detection.box;
          const best = Object.entries(r.expressions as Record<string, number>).sort((a, b2) => b2[1] - a[1])[0]![0];
          return { box: { x: b.x, y: b.y, width: b.width, height: b.height }, score: r.detection.score, expression: best };
        });
      } finally {
        input.dispose();
      }
    },
  };
}
