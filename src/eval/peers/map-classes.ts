// Peer models name their classes their own way and in their own order; this maps a peer's scores onto ours
// (EXPRESSIONS order). Classes outside our seven (contempt) are dropped before the argmax.
import { EXPRESSIONS, type Expression } from '../../types.js';

const SYNONYMS: Record<string, Expression> = {
  neutral: 'neutral',
  happy: 'happiness',
  happiness: 'happiness',
  smile: 'happiness',
  sad: 'sadness',
  sadness: 'sadness',
  angry: 'anger',
  anger: 'anger',
  fear: 'fear',
  fearful: 'fear',
  disgust: 'disgust',
  disgusted: 'disgust',
  surprise: 'surprise',
  surprised: 'surprise',
};

/** Scores in the peer's order → our order. Every one of our classes must be covered exactly once. */
export function mapPeerClasses(scores: ArrayLike<number>, peerClasses: readonly string[]): Float32Array {
  const out = new Float32Array(EXPRESSIONS.length);
  const seen = new Set<Expression>();
  peerClasses.forEach((name, i) => {
    const e = SYNONYMS[name.toLowerCase()];
    if (e === undefined) return;
    out[EXPRESSIONS.indexOf(e)] = scores[i] ?? 0;
    seen.add(e);
  });
  if (seen.size !== EXPRESSIONS.length) throw new Error(`peer classes [${peerClasses.join(', ')}] do not cover ${EXPRESSIONS.join(', ')}`);
  return out;
}
