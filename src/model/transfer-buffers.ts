// Buffers moved to a worker thread and handed back with its answer, for the next hand-off: a 1280-px frame is
// 4.9 MB and a batch of 16 crops 2.4 MB, and a fresh buffer for each cost its pages and the garbage collector's
// time on the main thread. The receiver reads only the bytes it is told of, so a larger spare serves a smaller need.

export class TransferBuffers {
  readonly #spare: ArrayBuffer[] = [];
  readonly #max: number;

  /** `max`: spares kept, about the hand-offs in flight at once. */
  constructor(max: number) {
    this.#max = max;
  }

  /** The smallest spare of at least `bytes`, or a new buffer of exactly that. */
  take(bytes: number): ArrayBuffer {
    let best = -1;
    for (let i = 0; i < this.#spare.length; i++) {
      const n = this.#spare[i]!.byteLength;
      if (n >= bytes && (best < 0 || n < this.#spare[best]!.byteLength)) best = i;
    }
    return best >= 0 ? this.#spare.splice(best, 1)[0]! : new ArrayBuffer(bytes);
  }

  /** A buffer back from a thread. When full, a larger one replaces the smallest (batches grow to the batch size). */
  give(buffer: ArrayBuffer): void {
    if (this.#spare.length < this.#max) {
      this.#spare.push(buffer);
      return;
    }
    const smallest = this.#spare.reduce((a, b, i) => (b.byteLength < this.#spare[a]!.byteLength ? i : a), 0);
    if (this.#spare[smallest]!.byteLength < buffer.byteLength) this.#spare[smallest] = buffer;
  }
}
