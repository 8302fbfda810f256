// The spare buffers behind the detector's and the model threads' hand-offs (pure bookkeeping).
import { describe, expect, it } from 'vitest';
import { TransferBuffers } from '../src/model/transfer-buffers.js';

describe('TransferBuffers', () => {
  it('takes the smallest spare that fits, else a new buffer of exactly the size asked', () => {
    const b = new TransferBuffers(4);
    const small = new ArrayBuffer(100);
    const big = new ArrayBuffer(1000);
    b.give(big);
    b.give(small);
    expect(b.take(50)).toBe(small);
    expect(b.take(50)).toBe(big);
    const fresh = b.take(50);
    expect(fresh).not.toBe(small);
    expect(fresh.byteLength).toBe(50);
    b.give(small);
    expect(b.take(200).byteLength).toBe(200); // the spare is too small: it stays
    expect(b.take(100)).toBe(small);
  });

  it('keeps at most its bound; when full, a larger buffer replaces the smallest', () => {
    const b = new TransferBuffers(2);
    const [a, c, d] = [new ArrayBuffer(10), new ArrayBuffer(20), new ArrayBuffer(30)];
    b.give(a);
    b.give(c);
    b.give(d); // replaces a
    b.give(new ArrayBuffer(5)); // smaller than both: dropped
    expect(b.take(1)).toBe(c);
    expect(b.take(1)).toBe(d);
    expect(b.take(1)).not.toBe(a);
  });
});
