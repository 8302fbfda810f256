// evaluateSet reads batches while the next images load: its crops still reach onCrop in the set's order, the
// outcomes are the classifier's, and a classifier that fails fails the run (no unhandled rejection). The
// classifier here is a stand-in whose answers come back out of order (pure bookkeeping under test); the
// images are real FER+ files.
import { describe, expect, it } from 'vitest';
import { loadDataset } from '../src/eval/datasets.js';
import { evaluateSet, type CropClassifier } from '../src/eval/evaluate-set.js';
import { EXPRESSIONS } from '../src/types.js';
import { sharedPath } from './helpers/shared.js';

const dataset = (): ReturnType<typeof loadDataset> => {
  const d = loadDataset(`ferplus:${sharedPath('data', 'ferplus', 'FER2013Valid')}`);
  return { ...d, samples: d.samples.slice(0, 23) };
};

/** Reads each crop as its sample's label (by call order), the first batch slowest, so batches finish out of order. */
function labelReader(labels: readonly string[], fail?: number): CropClassifier & { calls: number; maxAtOnce: number } {
  let next = 0;
  let open = 0;
  const c = {
    name: 'stand-in',
    calls: 0,
    maxAtOnce: 0,
    async classify(crops: readonly { size: number; rgb: Uint8Array }[]): Promise<Float32Array[]> {
      const call = c.calls++;
      open++;
      c.maxAtOnce = Math.max(c.maxAtOnce, open);
      const mine = labels.slice(next, (next += crops.length));
      await new Promise((r) => setTimeout(r, call === 0 ? 80 : 5));
      open--;
      if (call === fail) throw new Error('the model failed');
      return mine.map((l) => Float32Array.from(EXPRESSIONS, (e) => (e === l ? 0.9 : 0.01)));
    },
    close: async () => undefined,
  };
  return c;
}

describe('evaluateSet', () => {
  it('reads two batches at once and hands the crops over in the set order', async () => {
    const d = dataset();
    const reader = labelReader(d.samples.map((s) => s.label));
    const seen: string[] = [];
    const result = await evaluateSet({
      dataset: d,
      classifier: reader,
      cropSize: 64,
      cropScale: 1.3,
      batchSize: 5,
      onCrop: async (r) => {
        expect(r.predicted).toBe(r.sample.label);
        seen.push(r.sample.rel);
      },
    });
    expect(reader.calls).toBe(5);
    expect(reader.maxAtOnce).toBe(2);
    expect(seen).toEqual(d.samples.map((s) => s.rel));
    expect(result.metrics.accuracy).toBe(1);
  });

  it('one batch at a time when asked (packaged peers)', async () => {
    const d = dataset();
    const reader = labelReader(d.samples.map((s) => s.label));
    await evaluateSet({ dataset: d, classifier: reader, cropSize: 64, cropScale: 1.3, batchSize: 5, batchesInFlight: 1 });
    expect(reader.maxAtOnce).toBe(1);
  });

  it('a batch that fails fails the run with its error, whichever batch it is', async () => {
    for (const fail of [0, 2, 4]) {
      const d = dataset();
      await expect(evaluateSet({ dataset: d, classifier: labelReader(d.samples.map((s) => s.label), fail), cropSize: 64, cropScale: 1.3, batchSize: 5 })).rejects.toThrow(
        'the model failed',
      );
    }
  });
});
