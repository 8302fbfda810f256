// The join after the shared model stage: crops of many frames and streams go into one batcher and come back
// in whatever order the calls finish; this puts the readings back on their frames and releases each stream's
// items in their original order, a frame only once all its crops are read.
//
// Pure bookkeeping: it holds at most the frames the sources have let out (they pause until release).
import type { Frame } from '../types.js';
import type { ExpressionReading } from '../types.js';
import type { ReadItem, StreamItem } from './messages.js';

interface Entry {
  item: StreamItem;
  waiting: number;
  readings: Map<string, Float32Array>;
}

export class FrameJoin {
  readonly #queues = new Map<string, Entry[]>();
  readonly #byFrame = new Map<string, Entry>();

  add(item: StreamItem): void {
    let q = this.#queues.get(item.streamId);
    if (q === undefined) this.#queues.set(item.streamId, (q = []));
    const entry: Entry = { item, waiting: item.kind === 'frame' ? item.frame.crops.length : 0, readings: new Map() };
    q.push(entry);
    if (entry.waiting > 0 && item.kind === 'frame') this.#byFrame.set(key(item.streamId, item.frame.frame.frameId), entry);
  }

  attach(reading: ExpressionReading): void {
    const entry = this.#byFrame.get(key(reading.streamId, reading.frameId));
    // A reading for a frame already dropped (its stream was aborted) has nowhere to go.
    if (entry === undefined || entry.readings.has(reading.trackId)) return;
    entry.readings.set(reading.trackId, reading.probabilities);
    if (--entry.waiting === 0) this.#byFrame.delete(key(reading.streamId, reading.frameId));
  }

  /** Every item now ready, in per-stream order; a stream's queue is dropped after its end item. */
  drain(): ReadItem[] {
    const out: ReadItem[] = [];
    for (const [streamId, q] of this.#queues) {
      while (q.length > 0 && q[0]!.waiting === 0) {
        const { item, readings } = q.shift()!;
        if (item.kind === 'frame') {
          const { frame, faces, ended } = item.frame;
          out.push({ kind: 'frame', streamId, frame: { frame, faces, ended, readings } });
        } else {
          out.push(item);
        }
      }
      if (q.length === 0) this.#queues.delete(streamId);
    }
    return out;
  }

  /** Forgets a stream's waiting frames (the model stage failed); returns them so they can be released. */
  abort(streamId: string): Frame[] {
    const q = this.#queues.get(streamId) ?? [];
    this.#queues.delete(streamId);
    const frames: Frame[] = [];
    for (const e of q) {
      if (e.item.kind !== 'frame') continue;
      frames.push(e.item.frame.frame);
      this.#byFrame.delete(key(streamId, e.item.frame.frame.frameId));
    }
    return frames;
  }

  /** items held, all streams. */
  size(): number {
    let n = 0;
    for (const q of this.#queues.values()) n += q.length;
    return n;
  }
}

function key(streamId: string, frameId: number): string {
  return `${streamId}\u0000${frameId}`;
}
