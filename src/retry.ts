// The one retry helper: jittered exponential backoff that only retries what is marked retriable.
// Used by the Kafka sink (broker down) and by live sources (camera reconnects).
import { RetriesExceededError } from './errors.js';

export interface RetryPolicy {
  /** total attempts including the first; Infinity retries until aborted (reconnect loops). */
  maxAttempts: number;
  /** delay before the second attempt, ms. */
  initialDelayMs: number;
  /** cap on any single delay, ms. */
  maxDelayMs: number;
  /** growth per attempt. */
  factor: number;
  /** fraction of each delay that is randomised away: 0 = fixed, 1 = full jitter (0..delay). */
  jitter: number;
  /** decides retriability for errors that are not programmer errors; default: `error.retriable === true`. */
  isRetriable: (error: unknown) => boolean;
  /** called before each wait, e.g. to log or to emit a `stream.offline` event. */
  onRetry?: (info: { error: unknown; attempt: number; delayMs: number }) => void;
  /** aborting stops waiting at once and rejects with the signal's reason. */
  signal?: AbortSignal;
  /** injectable for tests. */
  random: () => number;
}

export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = {
  maxAttempts: 5,
  initialDelayMs: 200,
  maxDelayMs: 10_000,
  factor: 2,
  jitter: 0.5,
  isRetriable: (error) => (error as { retriable?: unknown } | null)?.retriable === true,
  random: Math.random,
};

/** Bugs, not weather: retrying them only hides them. */
export function isProgrammerError(error: unknown): boolean {
  return (
    error instanceof TypeError ||
    error instanceof RangeError ||
    error instanceof SyntaxError ||
    error instanceof ReferenceError ||
    error instanceof EvalError ||
    error instanceof URIError
  );
}

/** The wait before attempt `attempt + 1` (attempt is 1-based), jitter applied. */
export function backoffDelay(policy: Pick<RetryPolicy, 'initialDelayMs' | 'maxDelayMs' | 'factor' | 'jitter' | 'random'>, attempt: number): number {
  const raw = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.factor ** (attempt - 1));
  return Math.round(raw * (1 - policy.jitter * policy.random()));
}

function validate(p: RetryPolicy): void {
  if (!(p.maxAttempts >= 1)) throw new RangeError(`retry: maxAttempts must be >= 1, got ${p.maxAttempts}`);
  if (!(p.initialDelayMs >= 0) || !(p.maxDelayMs >= 0)) throw new RangeError('retry: delays must be >= 0');
  if (!(p.factor >= 1)) throw new RangeError(`retry: factor must be >= 1, got ${p.factor}`);
  if (!(p.jitter >= 0 && p.jitter <= 1)) throw new RangeError(`retry: jitter must be in [0, 1], got ${p.jitter}`);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * `retry(policy)(fn)` runs `fn` until it resolves, a non-retriable error comes out (rethrown as is),
 * or attempts run out (`RetriesExceededError`, `cause` = the last error).
 */
export function retry(policy: Partial<RetryPolicy> = {}) {
  const p: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...policy };
  validate(p);
  return async <T>(fn: (attempt: number) => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      if (p.signal?.aborted) throw p.signal.reason;
      try {
        return await fn(attempt);
      } catch (error) {
        if (isProgrammerError(error) || !p.isRetriable(error)) throw error;
        if (attempt >= p.maxAttempts) throw new RetriesExceededError(attempt, error);
        const delayMs = backoffDelay(p, attempt);
        p.onRetry?.({ error, attempt, delayMs });
        await sleep(delayMs, p.signal);
      }
    }
  };
}
