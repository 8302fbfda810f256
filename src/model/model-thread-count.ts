// How many model threads (model-threads.ts): the default and the check every entry point (config, API, CLI)
// shares. Apart from model-threads.ts so that checking a config does not load onnxruntime.
import { availableParallelism } from 'node:os';
import { ConfigError } from '../errors.js';

/** Model threads on the CPU; more than the cores would only take turns. */
export const CPU_MODEL_THREADS = Math.max(1, Math.min(2, availableParallelism()));

/** onnxruntime threads per session when `count` model threads share the cores (1 each on 2 cores and 2 threads). */
export function ortThreadsPerModelThread(count: number): number {
  return Math.max(1, Math.floor(availableParallelism() / Math.max(1, count)));
}

/** The largest `modelThreads`: beyond the cores they would only take turns, and each holds a session (~150 MB). */
export const MAX_MODEL_THREADS = 64;

/** Checks a model thread count (config, API, CLI): an integer from 0 to MAX_MODEL_THREADS. */
export function checkModelThreads(n: unknown, key = 'modelThreads'): number {
  if (!(typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= MAX_MODEL_THREADS)) {
    throw new ConfigError(key, `${key} must be an integer from 0 to ${MAX_MODEL_THREADS} (0: the model on the calling thread), got ${JSON.stringify(n)}`);
  }
  return n;
}
