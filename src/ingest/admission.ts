// Admission control shared by live sources: at most `capacity` frames from all cameras together are inside the
// pipeline at once. A source whose frame finds no free slot holds it (a newer frame replaces it and the older
// one counts as skipped, rtsp-source.ts) and waits its turn; a freed slot goes to the source that has waited
// longest. Without a shared bound every camera keeps its own frames in flight, the detector and the model stage
// queue them all, and latency grows with the number of cameras; with it, latency stays near one frame's
// processing time however many cameras there are, and the excess is dropped at the source, where it is counted.
/**
 * The shared bound of `serve`, `watch` and `worker` (LiveRunner, the library's analyzer). With at most one frame
 * per camera in the pipeline, 8 means one per camera up to 8 cameras: enough for the model stage to batch the
 * cameras' faces into one call (bench/soak.ts, 8 cameras at 5 Hz: mean batch 1.5 at a bound of 2, 2.7 at 8;
 * p95 latency 291 → 238 ms with the detector on every third frame).
 */
export const LIVE_FRAMES_IN_FLIGHT = 8;

export class AdmissionGate {
  readonly capacity: number;
  #free: number;
  /** sources waiting for a slot, longest-waiting first; each returns true if it took the slot. */
  readonly #waiting = new Set<() => boolean>();

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`admission capacity must be an integer >= 1, got ${capacity}`);
    this.capacity = capacity;
    this.#free = capacity;
  }

  /** Takes a slot if one is free. */
  tryEnter(): boolean {
    if (this.#free === 0) return false;
    this.#free--;
    return true;
  }

  /** Gives a slot back and offers it to the waiting sources in turn. */
  leave(): void {
    this.#free = Math.min(this.capacity, this.#free + 1);
    for (const take of this.#waiting) {
      if (this.#free === 0) break;
      this.#waiting.delete(take);
      take(); // a source that takes the slot calls tryEnter itself; one that no longer needs it just drops out
    }
  }

  /** Asks to be called when a slot frees (once; asking again keeps the place in the queue). */
  wait(take: () => boolean): void {
    this.#waiting.add(take);
  }

  cancel(take: () => boolean): void {
    this.#waiting.delete(take);
  }

  /** free slots, for tests and metrics. */
  free(): number {
    return this.#free;
  }
}
