// Inference: batches of crops (from every stream) → ExpressionReading[] through the expression model.
// Batching and the in-flight cap come from batch.ts; this file only maps a batch to readings.
import type { OperatorFunction } from 'rxjs';
import { CafeStreamError, InferenceError, errorLine } from '../errors.js';
import { EXPRESSIONS, type ExpressionReading, type FaceCrop } from '../types.js';
import { type BatchCallOptions, batchCalls } from './batch.js';
import type { ExpressionModelPort } from './ports.js';

export function readBatch(model: ExpressionModelPort): (crops: FaceCrop[]) => Promise<ExpressionReading[]> {
  return async (crops) => {
    let out: Float32Array[];
    try {
      out = await model.infer(crops);
    } catch (err) {
      if (err instanceof CafeStreamError) throw err;
      throw new InferenceError(`expression model failed on a batch of ${crops.length}: ${errorLine(err)}`, { cause: err });
    }
    if (out.length !== crops.length) {
      throw new InferenceError(`expression model returned ${out.length} results for ${crops.length} crops`);
    }
    return crops.map((c, i) => {
      const probabilities = out[i]!;
      if (probabilities.length !== EXPRESSIONS.length) {
        throw new InferenceError(`expression model returned ${probabilities.length} classes, expected ${EXPRESSIONS.length}`);
      }
      return { streamId: c.streamId, frameId: c.frameId, pts: c.pts, trackId: c.trackId, box: c.box, probabilities };
    });
  };
}

/** Crops in, one ExpressionReading[] per model call out. */
export function infer(model: ExpressionModelPort, options: BatchCallOptions = {}): OperatorFunction<FaceCrop, ExpressionReading[]> {
  return batchCalls(readBatch(model), options);
}
