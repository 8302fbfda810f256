// Scores of one labelled set: accuracy, per-class recall, macro recall and the confusion matrix, over the
// images where a face was found, plus an "all images" accuracy that counts every image without a face (or that
// could not be read) as an error. Same definitions as trainer/cafe_train/evaluate.py: macro recall is the mean
// recall over the classes that have samples.
import { EXPRESSIONS, type Expression } from '../types.js';

export interface Outcome {
  label: Expression;
  /** undefined: no prediction (no face found, or the image could not be read). */
  predicted?: Expression;
}

export interface DomainMetrics {
  /** labelled images scored. */
  images: number;
  /** images with a prediction (a face found, or a crop set). */
  n: number;
  /** images without a prediction. */
  facesNotFound: number;
  /** correct / n (0 when n = 0). */
  accuracy: number;
  /** correct / images: a missing face is an error. */
  accuracyAll: number;
  /** mean recall over classes with at least one sample among the n. */
  macroRecall: number;
  /** per class (EXPRESSIONS order keys): recall, or null without samples. */
  perClassRecall: Record<Expression, number | null>;
  /** samples per class among the n. */
  support: Record<Expression, number>;
  /** rows true, columns predicted, EXPRESSIONS order; only images with a prediction. */
  confusion: number[][];
  classes: readonly Expression[];
}

export function scoreOutcomes(outcomes: readonly Outcome[]): DomainMetrics {
  const k = EXPRESSIONS.length;
  const index = new Map<Expression, number>(EXPRESSIONS.map((e, i) => [e, i]));
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let n = 0;
  let correct = 0;
  for (const o of outcomes) {
    if (o.predicted === undefined) continue;
    n++;
    if (o.predicted === o.label) correct++;
    confusion[index.get(o.label)!]![index.get(o.predicted)!]!++;
  }
  const perClassRecall = {} as Record<Expression, number | null>;
  const support = {} as Record<Expression, number>;
  const present: number[] = [];
  EXPRESSIONS.forEach((e, i) => {
    const row = confusion[i]!;
    const s = row.reduce((a, b) => a + b, 0);
    support[e] = s;
    const r = s > 0 ? row[i]! / s : null;
    perClassRecall[e] = r;
    if (r !== null) present.push(r);
  });
  return {
    images: outcomes.length,
    n,
    facesNotFound: outcomes.length - n,
    accuracy: n > 0 ? correct / n : 0,
    accuracyAll: outcomes.length > 0 ? correct / outcomes.length : 0,
    macroRecall: present.length > 0 ? present.reduce((a, b) => a + b, 0) / present.length : 0,
    perClassRecall,
    support,
    confusion,
    classes: EXPRESSIONS,
  };
}

/** Index of the largest value (first on ties), as argmax over probabilities. */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

/** A readable block for one domain: headline figures, per-class recall, the confusion matrix. */
export function formatDomain(domain: string, m: DomainMetrics): string {
  const short = m.classes.map((c) => c.slice(0, 5));
  const lines = [
    `${domain}: n=${m.n} of ${m.images} images, faces not found ${m.facesNotFound}; ` +
      `accuracy ${pct(m.accuracy)} (all images ${pct(m.accuracyAll)}), macro recall ${pct(m.macroRecall)}`,
    '  recall   ' + m.classes.map((c, i) => `${short[i]} ${m.perClassRecall[c] === null ? '-' : pct(m.perClassRecall[c]!)}`).join('  '),
    '  confusion (rows true, columns predicted)',
    '  ' + ' '.repeat(10) + short.map((s) => s.padStart(7)).join(''),
    ...m.classes.map((c, i) => `  ${c.padEnd(10)}${m.confusion[i]!.map((v) => String(v).padStart(7)).join('')}`),
  ];
  return lines.join('\n') + '\n';
}
