// What the pipeline needs from the models, as structural types: the real FaceDetector (src/model/face-detector.ts)
// and ExpressionModel (src/model/expression-model.ts) satisfy them, and unit tests can pass small fakes.
import type { DetectHints, Detection, FaceCrop, Frame } from '../types.js';

export interface DetectorPort {
  detect(frame: Frame, hints?: DetectHints): Promise<Detection[]>;
  readonly name?: string;
}

export interface ExpressionModelPort {
  /** side of the square RGB crops the model takes. */
  readonly cropSize: number;
  /** one probability vector (EXPRESSIONS order) per crop, same order. */
  infer(crops: FaceCrop[]): Promise<Float32Array[]>;
  readonly provider?: string;
}
