// Commander argument parsers shared by the commands: a bad value is a usage error naming what was wanted.
import { InvalidArgumentError } from 'commander';
import { checkModelThreads, MAX_MODEL_THREADS } from '../model/model-thread-count.js';

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
}

export function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('must be a number >= 0');
  return n;
}

export function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

/** --model-threads: 0 (the model on the main thread) to MAX_MODEL_THREADS. */
export function modelThreadCount(value: string): number {
  try {
    return checkModelThreads(value.trim() === '' ? NaN : Number(value));
  } catch {
    throw new InvalidArgumentError(`must be an integer from 0 to ${MAX_MODEL_THREADS}`);
  }
}
