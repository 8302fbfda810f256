// Probability vectors for unit tests of smoothing and timelines.
import { EXPRESSIONS, type Expression } from '../../src/types.js';

/** A probability vector leaning `weight` on one class, the rest spread evenly. */
export function lean(label: Expression, weight = 0.8): number[] {
  const rest = (1 - weight) / (EXPRESSIONS.length - 1);
  return EXPRESSIONS.map((e) => (e === label ? weight : rest));
}
