import { describe, expect, it } from 'vitest';
import { ExpressionSmoother } from '../src/pipeline/smooth.js';
import { EXPRESSIONS } from '../src/types.js';
import { lean } from './helpers/expressions.js';

describe('ExpressionSmoother', () => {
  it('starts from the first reading', () => {
    const s = new ExpressionSmoother();
    const r = s.update(0, lean('happiness'));
    expect(r.label).toBe('happiness');
    expect(r.confidence).toBeCloseTo(0.8, 5);
  });

  it('does not flicker on single-frame outliers', () => {
    const s = new ExpressionSmoother({ tauSeconds: 0.3, hysteresis: 0.1 });
    const labels: string[] = [];
    for (let f = 0; f < 50; f++) {
      const outlier = f % 5 === 2; // one frame in five says surprise
      labels.push(s.update(f / 25, outlier ? lean('surprise', 0.9) : lean('neutral', 0.6)).label);
    }
    expect(new Set(labels)).toEqual(new Set(['neutral']));
  });

  it('switches after a sustained change, within a few time constants', () => {
    const s = new ExpressionSmoother({ tauSeconds: 0.3, hysteresis: 0.1 });
    for (let f = 0; f < 25; f++) s.update(f / 25, lean('neutral'));
    let switchedAt: number | undefined;
    for (let f = 25; f < 75; f++) {
      const r = s.update(f / 25, lean('happiness'));
      if (r.label === 'happiness' && switchedAt === undefined) switchedAt = f / 25 - 1;
    }
    expect(switchedAt).toBeDefined();
    expect(switchedAt!).toBeGreaterThan(0);
    expect(switchedAt!).toBeLessThan(0.6);
  });

  it('hysteresis holds the current label while the challenger leads by less than the margin', () => {
    const s = new ExpressionSmoother({ tauSeconds: 0.01, hysteresis: 0.1 });
    s.update(0, lean('neutral', 0.5));
    const p = EXPRESSIONS.map((e) => (e === 'neutral' ? 0.42 : e === 'happiness' ? 0.48 : 0.1 / 5));
    for (let f = 1; f < 20; f++) expect(s.update(f, p).label).toBe('neutral');
    const q = EXPRESSIONS.map((e) => (e === 'neutral' ? 0.35 : e === 'happiness' ? 0.55 : 0.1 / 5));
    expect(s.update(21, q).label).toBe('happiness');
  });

  it('weights by elapsed time, so the frame rate does not change the smoothing', () => {
    const fast = new ExpressionSmoother({ tauSeconds: 0.5 });
    const slow = new ExpressionSmoother({ tauSeconds: 0.5 });
    fast.update(0, lean('neutral'));
    slow.update(0, lean('neutral'));
    let a = fast.update(0, lean('neutral'));
    for (let f = 1; f <= 25; f++) a = fast.update(f / 25, lean('anger'));
    let b = slow.update(0, lean('neutral'));
    for (let f = 1; f <= 5; f++) b = slow.update(f / 5, lean('anger'));
    const i = EXPRESSIONS.indexOf('anger');
    expect(a.smoothed[i]).toBeCloseTo(b.smoothed[i]!, 5);
  });
});
