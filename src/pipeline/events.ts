// Building timeline events: ids, the common fields, and number rounding so the JSON stays small and stable.
import { randomUUID } from 'node:crypto';
import { EVENT_SCHEMA_VERSION, EXPRESSIONS, type Box, type EventBase, type ExpressionProbabilities } from '../types.js';

/** A random UUID: unique across runs and processes, so consumers can de-duplicate by id alone. */
export function newEventId(): string {
  return randomUUID();
}

export function eventBase(streamId: string, time: number): EventBase {
  return { id: newEventId(), schemaVersion: EVENT_SCHEMA_VERSION, streamId, time: roundTime(time), emittedAt: new Date().toISOString() };
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
