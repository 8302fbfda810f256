// Building timeline events: ids, the common fields, and number rounding so the JSON stays small and stable.
import { createHash, randomUUID } from 'node:crypto';
import { EVENT_SCHEMA_VERSION, EXPRESSIONS, type Box, type EventBase, type ExpressionProbabilities } from '../types.js';

/** A random UUID: unique across runs and processes, so consumers can de-duplicate by id alone. */
export function newEventId(): string {
  return randomUUID();
}

/** Where a stream's event ids come from: one generator per stream. */
export type EventIds = (streamId: string) => () => string;

/**
 * Ids that depend only on (seed, stream, position in the stream's events): the same job run twice gives the
 * same ids for the same events, so consumers de-duplicate a redone job by id. A UUID-shaped SHA-256 prefix.
 */
export function deterministicIds(seed: string): EventIds {
  return (streamId) => {
    let n = 0;
    return () => {
      const h = createHash('sha256').update(`${seed}\u0000${streamId}\u0000${n++}`).digest('hex');
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
    };
  };
}

export function eventBase(streamId: string, time: number, id: string = newEventId()): EventBase {
  return { id, schemaVersion: EVENT_SCHEMA_VERSION, streamId, time: roundTime(time), emittedAt: new Date().toISOString() };
}

/** Microseconds are finer than any frame interval; avoids 0.30000000000000004 in the output. */
export function roundTime(t: number): number {
  return Math.round(t * 1e6) / 1e6;
}

export function roundProbability(p: number): number {
  return Math.round(p * 1e5) / 1e5;
}

export function roundBox(b: Box): Box {
  const r = (v: number): number => Math.round(v * 10) / 10;
  return { x: r(b.x), y: r(b.y), width: r(b.width), height: r(b.height) };
}

export function toProbabilities(values: ArrayLike<number>): ExpressionProbabilities {
  const out = {} as ExpressionProbabilities;
  EXPRESSIONS.forEach((name, i) => {
    out[name] = roundProbability(values[i] ?? 0);
  });
  return out;
}
