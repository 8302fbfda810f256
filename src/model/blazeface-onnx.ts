// MediaPipe's BlazeFace on onnxruntime: the network @tensorflow-models/face-detection runs on tfjs, translated
// to ONNX by the trainer (`trainer import-detector`, models/detector/), with the package's own pre- and
// post-processing done here in plain loops.
//
// Why: on tfjs-wasm a detector call is ~25 ms of model (most of it per-op JavaScript dispatch, the wasm build
// has no threads in Node) plus ~10 ms of tf ops around it; onnxruntime runs the same graph in ~5 ms. The anchor
// layout and thresholds come from the package itself (its constants and createSsdAnchors), and the letterbox,
// box decoding, NMS and projection follow its tfjs code step for step, so both runtimes find the same faces
// (test/face-detector.test.ts compares them on real frames).

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { AnchorConfig } from '@tensorflow-models/face-detection/dist/shared/calculators/interfaces/config_interfaces.js';
import type { Rect } from '@tensorflow-models/face-detection/dist/shared/calculators/interfaces/shape_interfaces.js';
import { ModelError, errorLine } from '../errors.js';
import { iou } from '../geometry.js';
import { packageRoot } from '../paths.js';
import type { Box } from '../types.js';
import { createSession, ort } from './onnx-runtime.js';

export type BlazeFaceType = 'short' | 'full';

/** An RGB image, 0–255, row-major HWC: a frame's own bytes, or a float working copy (downscaled, a mosaic). */
export interface DetectorImage {
  data: Float32Array | Uint8Array;
  width: number;
  height: number;
}

/** A detection as the package returns it: box and keypoints relative to the image, score in [0, 1]. */
export interface RawDetection {
  score?: number[];
  locationData: {
    relativeBoundingBox?: { xMin: number; yMin: number; width: number; height: number };
    relativeKeypoints?: { x: number; y: number }[];
  };
}

/** What the detector needs of a model runtime: one image in, its detections out. */
export interface BlazeFaceRunner {
  detectFaces(image: DetectorImage): Promise<RawDetection[]>;
  dispose(): void;
}

/** The fields of the package's DecodeConfig that BlazeFace's configs set. */
interface DecodeConfig {
  numBoxes: number;
  numCoords: number;
  boxCoordOffset: number;
  keypointCoordOffset: number;
  numKeypoints: number;
  numValuesPerKeypoint: number;
  scoreClippingThresh: number;
  minScoreThresh: number;
  xScale: number;
  yScale: number;
  wScale: number;
  hScale: number;
}

interface PackageConstants {
  SHORT_RANGE_DETECTOR_ANCHOR_CONFIG: AnchorConfig;
  FULL_RANGE_DETECTOR_ANCHOR_CONFIG: AnchorConfig;
  SHORT_RANGE_TENSORS_TO_DETECTION_CONFIG: DecodeConfig;
  FULL_RANGE_TENSORS_TO_DETECTION_CONFIG: DecodeConfig;
  DETECTOR_NON_MAX_SUPPRESSION_CONFIG: { minSuppressionThreshold: number };
}

const require = createRequire(import.meta.url);
// The package's dist is CommonJS without an exports map: its calculators are plain modules we can require.
const constants = require('@tensorflow-models/face-detection/dist/tfjs/constants.js') as PackageConstants;
const { createSsdAnchors } = require('@tensorflow-models/face-detection/dist/shared/calculators/create_ssd_anchors.js') as {
  createSsdAnchors(config: AnchorConfig): Rect[];
};

/** models/detector/face-detector-<type>.onnx of this package (built by `trainer import-detector`). */
export function blazeFaceOnnxPath(type: BlazeFaceType): string {
  return join(packageRoot(), 'models', 'detector', `face-detector-${type}.onnx`);
}

export async function loadBlazeFaceOnnx(type: BlazeFaceType, o: { minScore: number; maxFaces: number; path?: string }): Promise<BlazeFaceRunner> {
  const path = o.path ?? blazeFaceOnnxPath(type);
  if (!existsSync(path)) {
    throw new ModelError('CS_ERR_MODEL_LOAD', path, `face detector model not found: ${path} (rebuild it with \`trainer import-detector\`, or use detector.runtime tfjs)`);
  }
  const anchorConfig = type === 'short' ? constants.SHORT_RANGE_DETECTOR_ANCHOR_CONFIG : constants.FULL_RANGE_DETECTOR_ANCHOR_CONFIG;
  const decode = type === 'short' ? constants.SHORT_RANGE_TENSORS_TO_DETECTION_CONFIG : constants.FULL_RANGE_TENSORS_TO_DETECTION_CONFIG;
  const side = anchorConfig.inputSizeWidth;
  let session: ort.InferenceSession;
  try {
    // one thread: the detector has a thread of its own (detector-thread.ts) and the model stage has the other core
    session = await createSession(path, 'cpu', 1);
    const probe = await session.run({ image: new ort.Tensor('float32', new Float32Array(side * side * 3), [1, side, side, 3]) });
    const dims = probe.detections?.dims ?? [];
    if (dims[1] !== decode.numBoxes || dims[2] !== decode.numCoords + 1) {
      throw new Error(`output 'detections' has shape [${dims.join(', ')}], expected [1, ${decode.numBoxes}, ${decode.numCoords + 1}]`);
    }
  } catch (err) {
    throw new ModelError('CS_ERR_MODEL_LOAD', path, `face detector did not load: ${path} (${errorLine(err)})`, { cause: err });
  }
  // createSsdAnchors fills in defaults on the object it is given: hand it a copy of the shared constant
  const anchors = createSsdAnchors({ ...anchorConfig });
  return new OnnxBlazeFace(session, anchors, { ...decode, minScoreThresh: o.minScore }, o.maxFaces, constants.DETECTOR_NON_MAX_SUPPRESSION_CONFIG.minSuppressionThreshold);
}

class OnnxBlazeFace implements BlazeFaceRunner {
  readonly #session: ort.InferenceSession;
  readonly #anchors: Rect[];
  readonly #cfg: DecodeConfig;
  readonly #maxFaces: number;
  readonly #iou: number;
  readonly #side: number;
  readonly #input: Float32Array;

  constructor(session: ort.InferenceSession, anchors: Rect[], cfg: DecodeConfig, maxFaces: number, iou: number) {
    this.#session = session;
    this.#anchors = anchors;
    this.#cfg = cfg;
    this.#maxFaces = maxFaces;
    this.#iou = iou;
    this.#side = cfg.xScale;
    this.#input = new Float32Array(this.#side * this.#side * 3);
  }

  async detectFaces(image: DetectorImage): Promise<RawDetection[]> {
    const side = this.#side;
    const { offsetX, offsetY, roi } = letterbox(image, this.#input, side);
    const out = await this.#session.run({ image: new ort.Tensor('float32', this.#input, [1, side, side, 3]) });
    const raw = out.detections!.data as Float32Array;
    const found = nonMaxSuppression(this.#decode(raw), this.#maxFaces, this.#iou);
    // letterbox-relative → image-relative (the package's detectionProjection for an unrotated square ROI)
    const px = (x: number): number => (x * roi + offsetX) / image.width;
    const py = (y: number): number => (y * roi + offsetY) / image.height;
    return found.map((d) => ({
      score: [d.score],
      locationData: {
        relativeBoundingBox: { xMin: px(d.box.x), yMin: py(d.box.y), width: (d.box.width * roi) / image.width, height: (d.box.height * roi) / image.height },
        relativeKeypoints: d.keypoints.map((k) => ({ x: px(k.x), y: py(k.y) })),
      },
    }));
  }

  /** Anchor rows above the score threshold, decoded as the package's tensorsToDetections does. */
  #decode(raw: Float32Array): Decoded[] {
    const c = this.#cfg;
    const stride = c.numCoords + 1; // logit, then the box and keypoint coordinates
    const clip = c.scoreClippingThresh;
    const out: Decoded[] = [];
    for (let i = 0; i < c.numBoxes; i++) {
      const o = i * stride;
      const logit = Math.min(Math.max(raw[o]!, -clip), clip);
      const score = 1 / (1 + Math.exp(-logit));
      if (score < c.minScoreThresh) continue;
      const a = this.#anchors[i]!;
      const b = o + 1 + c.boxCoordOffset;
      const xc = (raw[b]! / c.xScale) * a.width + a.xCenter;
      const yc = (raw[b + 1]! / c.yScale) * a.height + a.yCenter;
      // the package scales the width by the anchor's height too (MediaPipe does); anchors here are square
      const w = (raw[b + 2]! / c.wScale) * a.height;
      const h = (raw[b + 3]! / c.hScale) * a.height;
      if (w < 0 || h < 0) continue;
      const keypoints: { x: number; y: number }[] = [];
      for (let k = 0; k < c.numKeypoints; k++) {
        const kp = o + 1 + c.keypointCoordOffset + k * c.numValuesPerKeypoint;
        keypoints.push({ x: (raw[kp]! / c.xScale) * a.width + a.xCenter, y: (raw[kp + 1]! / c.yScale) * a.height + a.yCenter });
      }
      out.push({ score, box: { x: xc - w / 2, y: yc - h / 2, width: w, height: h }, keypoints });
    }
    return out;
  }

  dispose(): void {
    void this.#session.release();
  }
}

/** An anchor row above the threshold: box and keypoints relative to the letterboxed input. */
interface Decoded {
  score: number;
  box: Box;
  keypoints: { x: number; y: number }[];
}

/**
 * The package's convertImageToTensor for a whole image with keepAspectRatio and a zero border: the image,
 * centred in a square ROI as wide as its longer side, sampled bilinearly (tfjs' transform: output pixel x reads
 * input x·roi/side + offset, neighbours outside the image read 0) into `out` (side×side×3), mapped to [-1, 1].
 */
export function letterbox(image: DetectorImage, out: Float32Array, side: number): { offsetX: number; offsetY: number; roi: number } {
  const { width: W, height: H, data } = image;
  const roi = Math.max(W, H);
  const scale = roi / side;
  const offsetX = (W - roi) / 2;
  const offsetY = (H - roi) / 2;
  const read = (y: number, x: number, c: number): number => (y >= 0 && y < H && x >= 0 && x < W ? data[(y * W + x) * 3 + c]! : 0);
  let o = 0;
  for (let oy = 0; oy < side; oy++) {
    const y = oy * scale + offsetY;
    const y0 = Math.floor(y);
    const fy = y - y0;
    for (let ox = 0; ox < side; ox++) {
      const x = ox * scale + offsetX;
      const x0 = Math.floor(x);
      const fx = x - x0;
      const inside = y0 >= 0 && y0 + 1 < H && x0 >= 0 && x0 + 1 < W;
      for (let c = 0; c < 3; c++) {
        let top: number;
        let bottom: number;
        if (inside) {
          const p = (y0 * W + x0) * 3 + c;
          const q = p + W * 3;
          top = data[p]! + (data[p + 3]! - data[p]!) * fx;
          bottom = data[q]! + (data[q + 3]! - data[q]!) * fx;
        } else {
          top = read(y0, x0, c) * (1 - fx) + read(y0, x0 + 1, c) * fx;
          bottom = read(y0 + 1, x0, c) * (1 - fx) + read(y0 + 1, x0 + 1, c) * fx;
        }
        out[o++] = ((top + (bottom - top) * fy) * 2) / 255 - 1;
      }
    }
  }
  return { offsetX, offsetY, roi };
}

/** Greedy non-maximum suppression by IoU, best score first (tf.image.nonMaxSuppression's rule). */
function nonMaxSuppression(ds: Decoded[], max: number, iouThreshold: number): Decoded[] {
  const sorted = [...ds].sort((a, b) => b.score - a.score);
  const kept: Decoded[] = [];
  for (const d of sorted) {
    if (kept.length >= max) break;
    if (kept.every((k) => iou(k.box, d.box) <= iouThreshold)) kept.push(d);
  }
  return kept;
}
