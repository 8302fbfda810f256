// `analyze --report file.html`: a sink that keeps the run's events and writes the report when the run
// closes its sinks. It is meant for files (one analyze run); a live stream would grow without bound, so
// it refuses to keep more than a cap of events and says so in the report instead of eating memory.
import type { Sink, SinkStats, TimelineEvent } from '../types.js';
import { writeReport } from './report.js';
import { ThumbnailCollector } from './thumbnails.js';

export interface ReportSinkOptions {
  out: string;
  config: Record<string, unknown>;
  /** embed one face thumbnail per track (off by default: privacy). */
  thumbnails?: boolean;
  /** events kept at most; beyond it the rest are counted as dropped. */
  maxEvents?: number;
}

const DEFAULT_MAX_EVENTS = 500_000; // ~250 MB of events: an hour of two faces at 25 fps fits

export class ReportSink implements Sink {
  readonly name = 'report';
  readonly #opts: ReportSinkOptions;
  readonly #events: TimelineEvent[] = [];
  readonly #thumbs: ThumbnailCollector | undefined;
  #dropped = 0;
  #closed = false;

  constructor(opts: ReportSinkOptions) {
    this.#opts = opts;
    this.#thumbs = opts.thumbnails ? new ThumbnailCollector() : undefined;
  }

  /** The pipeline's crop hook when thumbnails are on, else undefined (no pixels are kept at all). */
  get onCrop(): ThumbnailCollector['onCrop'] | undefined {
    return this.#thumbs?.onCrop;
  }

  async write(event: TimelineEvent): Promise<void> {
    if (event.type === 'face.observation') this.#thumbs?.observe(event);
    if (this.#events.length >= (this.#opts.maxEvents ?? DEFAULT_MAX_EVENTS)) {
      this.#dropped++;
      return;
    }
    this.#events.push(event);
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const config = this.#dropped > 0 ? { ...this.#opts.config, reportDroppedEvents: this.#dropped } : this.#opts.config;
    await writeReport(this.#events, {
      out: this.#opts.out,
      config,
      ...(this.#thumbs ? { thumbnails: await this.#thumbs.jpegs() } : {}),
    });
  }

  stats(): SinkStats {
    return { sent: this.#closed ? this.#events.length : 0, buffered: this.#closed ? 0 : this.#events.length, dropped: this.#dropped };
  }
}
