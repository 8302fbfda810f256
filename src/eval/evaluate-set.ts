// Scores one labelled set through the product's own path: each image decoded like a photo given to `analyze`
// (ingest/image.ts), the pipeline's face detector with the photo path's padded retry (model/padded-detect.ts),
// the largest face cropped by pipeline/crop.ts (same scale, same size), then a classifier (our expression model, or a packaged peer) on that crop. Sets that are face
// crops already (FER+, --as-crops) skip the detector: the set's box (else the whole image) is resized to the
// crop size.
import sharp from 'sharp';
import { errorLine } from '../errors.js';
import { loadImageFrame } from '../ingest/image.js';
import type { FaceDetector } from '../model/face-detector.js';
import { detectInPhoto } from '../model/padded-detect.js';
import { cropFace, cropSquare, extractClamped } from '../pipeline/crop.js';
import { EXPRESSIONS, type Box, type Detection, type Expression, type Frame } from '../types.js';
import type { Dataset, Sample } from './datasets.js';
import { type DomainMetrics, type Outcome, argmax, scoreOutcomes } from './metrics.js';

/** Anything that reads square RGB24 crops: per crop, probabilities in EXPRESSIONS order. */
export interface CropClassifier {
  readonly name: string;
  classify(crops: readonly { size: number; rgb: Uint8Array }[]): Promise<Float32Array[]>;
  close(): Promise<void>;
}

export interface Point {
  x: number;
  y: number;
}

/** One crop as the model saw it, with how it was framed (for --save-crops). */
export interface CropRecord {
  sample: Sample;
  domain: string;
  /** RGB24, size × size. */
  rgb: Buffer;
  size: number;
  /** detector box (or the set's box / the whole image for crop sets), source-image pixels. */
  box: Box;
  /** the square region cut from the source (cropSquare), source-image pixels; may overhang the image. */
  region: Box;
  rightEye?: Point;
  leftEye?: Point;
  probabilities: Float32Array;
  predicted: Expression;
}

export interface EvaluateSetParams {
  dataset: Dataset;
  /** required unless the dataset is a crop set. */
  detector?: FaceDetector;
  classifier: CropClassifier;
  /** crop side, pixels (the expression model's cropSize). */
  cropSize: number;
  /** crop side = longer box side × cropScale (the pipeline's crop.scale). */
  cropScale: number;
  batchSize?: number;
  /** batches the classifier reads at once while the next images load (default 2: one per model thread). */
  batchesInFlight?: number;
  /** receives each crop after classification; awaited (so a slow disk slows the run instead of piling up). */
  onCrop?: (record: CropRecord) => Promise<void>;
  onNotFound?: (sample: Sample, reason: string) => Promise<void>;
  onProgress?: (done: number, total: number) => void;
}

export interface SetResult {
  metrics: DomainMetrics;
  /** images where the detector found no face. */
  noFace: number;
  /** images that could not be decoded, with the reason. */
  unreadable: { source: string; reason: string }[];
}

type Pending = Omit<CropRecord, 'probabilities' | 'predicted'> & { outcome: Outcome };

export async function evaluateSet(p: EvaluateSetParams): Promise<SetResult> {
  const { dataset, classifier, cropSize, cropScale } = p;
  if (!dataset.crops && p.detector === undefined) throw new Error(`${dataset.domain}: a face detector is needed for uncropped photos`);
  const batchSize = p.batchSize ?? 32;
  const batchesInFlight = p.batchesInFlight ?? 2;
  const outcomes: Outcome[] = [];
  const unreadable: SetResult['unreadable'] = [];
  let noFace = 0;
  let pending: Pending[] = [];
  // Batches are read while the next images load (a sequential loop left the model idle meanwhile, and the
  // loading idle while it read); their crops are handed to onCrop in order, one batch after the other.
  let handedOver = Promise.resolve();
  const reading: Promise<void>[] = [];

  const flush = async (): Promise<void> => {
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    const probs = classifier.classify(batch.map((b) => ({ size: b.size, rgb: b.rgb })));
    probs.catch(() => undefined); // awaited in turn below
    handedOver = handedOver.then(async () => {
      const all = await probs;
      for (let i = 0; i < batch.length; i++) {
        const { outcome, ...rec } = batch[i]!;
        const probabilities = all[i]!;
        const predicted = EXPRESSIONS[argmax(probabilities)]!;
        outcome.predicted = predicted;
        await p.onCrop?.({ ...rec, probabilities, predicted });
      }
    });
    // a failure is the run's error when its turn is awaited, here or at the end, never an unhandled rejection
    handedOver.catch(() => undefined);
    reading.push(handedOver);
    if (reading.length >= batchesInFlight) await reading.shift();
  };

  let done = 0;
  for (const sample of dataset.samples) {
    const outcome: Outcome = { label: sample.label };
    outcomes.push(outcome);
    let frame: Frame;
    try {
      frame = await loadImageFrame(sample.source);
    } catch (err) {
      unreadable.push({ source: sample.source, reason: errorLine(err) });
      await p.onNotFound?.(sample, `unreadable: ${errorLine(err)}`);
      p.onProgress?.(++done, dataset.samples.length);
      continue;
    }
    if (dataset.crops) {
      const box = sample.box ?? { x: 0, y: 0, width: frame.width, height: frame.height };
      pending.push({ sample, domain: dataset.domain, rgb: await resizeWhole(frame, box, cropSize), size: cropSize, box, region: box, outcome });
    } else {
      const face = largest(await detectInPhoto(p.detector!, frame));
      if (face === undefined) {
        noFace++;
        await p.onNotFound?.(sample, 'no face found');
      } else {
        const rgb = await cropFace(frame, face.box, cropSize, cropScale);
        const eyes = eyesOf(face);
        pending.push({ sample, domain: dataset.domain, rgb, size: cropSize, box: face.box, region: cropSquare(face.box, cropScale), ...eyes, outcome });
      }
    }
    if (pending.length >= batchSize) await flush();
    p.onProgress?.(++done, dataset.samples.length);
  }
  await flush();
  await handedOver;
  return { metrics: scoreOutcomes(outcomes), noFace, unreadable };
}

/** The largest face by box area (an evaluation image shows one labelled face; others are background). */
export function largest(ds: readonly Detection[]): Detection | undefined {
  let best: Detection | undefined;
  for (const d of ds) if (best === undefined || d.box.width * d.box.height > best.box.width * best.box.height) best = d;
  return best;
}

function eyesOf(d: Detection): { rightEye?: Point; leftEye?: Point } {
  const find = (name: string): Point | undefined => {
    const k = d.keypoints?.find((q) => q.name === name);
    return k === undefined ? undefined : { x: k.x, y: k.y };
  };
  const rightEye = find('rightEye');
  const leftEye = find('leftEye');
  return { ...(rightEye ? { rightEye } : {}), ...(leftEye ? { leftEye } : {}) };
}

/** A crop set's face: its box (the whole image for FER+) resized straight to size × size, as trainer evaluate does. */
async function resizeWhole(frame: Frame, box: Box, size: number): Promise<Buffer> {
  const region = extractClamped(frame, box);
  if (box.width === size && box.height === size) return region;
  return sharp(region, { raw: { width: box.width, height: box.height, channels: 3 } })
    .resize(size, size, { fit: 'fill', kernel: 'cubic' })
    .raw()
    .toBuffer();
}
