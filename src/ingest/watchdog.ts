// The frame-stall timer of a live source.
//
// Why a stall timer and not ffmpeg's own `-timeout`: a hung RTSP server that keeps the TCP connection open (or
// keeps sending RTCP) never trips ffmpeg's socket timeout, and ffmpeg then blocks forever without a frame.
// Only "no frame for N seconds" catches every case.

export interface StallWatchdogOptions {
  /** no progress for this long means stalled. */
  timeoutMs: number;
  onStall: (idleMs: number) => void;
  /** injectable clock for tests. */
  now?: () => number;
}

/** Fires `onStall` once when `kick()` has not been called for `timeoutMs`; `stop()` disarms it. */
export class StallWatchdog {
  readonly #timeoutMs: number;
  readonly #onStall: (idleMs: number) => void;
  readonly #now: () => number;
  #last = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(opts: StallWatchdogOptions) {
    if (!(opts.timeoutMs > 0)) throw new RangeError(`watchdog timeout must be > 0 ms, got ${opts.timeoutMs}`);
    this.#timeoutMs = opts.timeoutMs;
    this.#onStall = opts.onStall;
    this.#now = opts.now ?? Date.now;
  }

  start(): void {
    this.#last = this.#now();
    if (this.#timer !== undefined) return;
    // Checking 4× per period bounds detection at 1.25 × timeout without a timer reset per frame.
    this.#timer = setInterval(() => this.#check(), Math.max(10, Math.floor(this.#timeoutMs / 4)));
    this.#timer.unref();
  }

  kick(): void {
    this.#last = this.#now();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #check(): void {
    const idle = this.#now() - this.#last;
    if (idle >= this.#timeoutMs) {
      this.stop();
      this.#onStall(idle);
    }
  }
}
