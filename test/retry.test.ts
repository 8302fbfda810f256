import { describe, expect, it } from 'vitest';
import { CafeStreamError, RetriesExceededError, SinkError } from '../src/errors.js';
import { backoffDelay, retry } from '../src/retry.js';

const fast = { initialDelayMs: 1, maxDelayMs: 4, jitter: 0 };

describe('retry', () => {
  it('retries retriable errors and returns the first success', async () => {
    let calls = 0;
    const result = await retry({ ...fast, maxAttempts: 5 })(async (attempt) => {
      calls++;
      if (attempt < 3) throw new SinkError('kafka', 'broker down', { retriable: true });
      return 'ok';
    });
    expect(result).toBe('ok');
    expect(calls).toBe(3);
  });

  it('gives up with RetriesExceededError carrying the last error', async () => {
    let calls = 0;
    const last = new SinkError('kafka', 'still down', { retriable: true });
    const err = await retry({ ...fast, maxAttempts: 3 })(async () => {
      calls++;
      throw last;
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetriesExceededError);
    expect((err as RetriesExceededError).attempts).toBe(3);
    expect((err as RetriesExceededError).cause).toBe(last);
    expect((err as RetriesExceededError).code).toBe('CS_ERR_RETRIES_EXCEEDED');
    expect(calls).toBe(3);
  });

  it('rethrows non-retriable errors at once, unwrapped', async () => {
    let calls = 0;
    const fatal = new CafeStreamError('CS_ERR_CONFIG', 'bad option');
    await expect(
      retry({ ...fast, maxAttempts: 5 })(async () => {
        calls++;
        throw fatal;
      }),
    ).rejects.toBe(fatal);
    expect(calls).toBe(1);
  });

  it('never retries programmer errors, even if a custom predicate says yes', async () => {
    for (const bug of [new TypeError('x is undefined'), new RangeError('bad index')]) {
      let calls = 0;
      await expect(
        retry({ ...fast, maxAttempts: 5, isRetriable: () => true })(async () => {
          calls++;
          throw bug;
        }),
      ).rejects.toBe(bug);
      expect(calls).toBe(1);
    }
  });

  it('grows delays exponentially up to the cap, jitter only shortens them', () => {
    const p = { initialDelayMs: 100, maxDelayMs: 1000, factor: 2, jitter: 0, random: () => 0.5 };
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(p, a))).toEqual([100, 200, 400, 800, 1000, 1000]);
    const jittered = { ...p, jitter: 0.5 };
    expect(backoffDelay({ ...jittered, random: () => 0 }, 3)).toBe(400);
    expect(backoffDelay({ ...jittered, random: () => 0.999999 }, 3)).toBe(200);
  });

  it('reports each retry with its delay', async () => {
    const seen: { attempt: number; delayMs: number }[] = [];
    await retry({ ...fast, maxAttempts: 4, onRetry: ({ attempt, delayMs }) => seen.push({ attempt, delayMs }) })(
      async (attempt) => {
        if (attempt < 4) throw Object.assign(new Error('transient'), { retriable: true });
      },
    );
    expect(seen).toEqual([
      { attempt: 1, delayMs: 1 },
      { attempt: 2, delayMs: 2 },
      { attempt: 3, delayMs: 4 },
    ]);
  });

  it('stops waiting when aborted', async () => {
    const ac = new AbortController();
    const reason = new Error('shutdown');
    const run = retry({ initialDelayMs: 60_000, maxAttempts: Infinity, signal: ac.signal })(async () => {
      throw new SinkError('kafka', 'down', { retriable: true });
    });
    setTimeout(() => ac.abort(reason), 10);
    await expect(run).rejects.toBe(reason);
  });

  it('rejects bad policies at the edge', () => {
    expect(() => retry({ maxAttempts: 0 })).toThrow(RangeError);
    expect(() => retry({ jitter: 2 })).toThrow(RangeError);
  });
});
