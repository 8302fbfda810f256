// A throughput figure for the model stage is its steady state: every model thread loaded, and each past its first
// full batches. A fresh onnxruntime session's first batch of 16 touches fresh memory and is ~30 % slower; warming
// one thread only (one call) left the other's first batches inside the measured span: ~10 % off a 256-crop run.
import { ThreadedExpressionModel } from '../src/model/model-threads.js';
import type { ExpressionModel } from '../src/model/expression-model.js';
import type { FaceCrop } from '../src/types.js';

/** Runs `rounds` batches on every model thread at once (each call goes to the least busy thread). */
export async function warmUp(model: ExpressionModel, batch: FaceCrop[], rounds = 2): Promise<void> {
  const threads = model instanceof ThreadedExpressionModel ? await model.whenAllLoaded() : 1;
  for (let r = 0; r < rounds; r++) await Promise.all(Array.from({ length: threads }, () => model.infer(batch)));
}
