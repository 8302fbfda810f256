// The file views of `analyze` (--report, --thumbnails, --annotate) as CLI options and sinks. Both views are
// sinks that keep what they need while the run goes and do their work at `finish()` (idempotent; `close()`
// calls it too), so analyze can report a failed view with its own exit code instead of losing it in cleanup.
import type { Command } from 'commander';
import { ConfigError } from '../errors.js';
import type { FaceCrop, Sink, SinkStats, TimelineEvent } from '../types.js';
import { annotateVideo } from './annotate.js';
import { ReportSink } from './report-sink.js';

export function registerViewOptions(cmd: Command): Command {
  return cmd
    .option('--report <file>', 'write a self-contained HTML report (charts, segments, summary) to this file')
    .option('--thumbnails', 'with --report: embed one small face image per track (off by default: privacy)')
    .option('--annotate <file>', 'write a copy of the video with boxes, track ids and labels drawn (libx264, audio copied)');
}

export interface FileViews {
  /** add these to the run's sinks. */
  sinks: Sink[];
  /** give to runPipeline as `onCrop` (only set with --thumbnails). */
  onCrop?: (crop: FaceCrop) => void;
  /** shown in the report as the run's configuration; fill in more (models, detector) before finish(). */
  config: Record<string, unknown>;
  /** writes the report and the annotated video; rejects with the first failure. */
  finish(): Promise<string[]>;
}

/** Validated once here: --thumbnails without --report is a usage error, not silently ignored. */
export function viewsFromOptions(input: string, opts: Record<string, unknown>): FileViews {
  const report = typeof opts['report'] === 'string' ? opts['report'] : undefined;
  const annotate = typeof opts['annotate'] === 'string' ? opts['annotate'] : undefined;
  const thumbnails = opts['thumbnails'] === true;
  if (thumbnails && report === undefined) throw new ConfigError('thumbnails', '--thumbnails needs --report <file>');
  const config: Record<string, unknown> = { input, options: plainOptions(opts) };
  const sinks: Sink[] = [];
  const jobs: (() => Promise<string>)[] = [];
  let onCrop: ((crop: FaceCrop) => void) | undefined;
  if (report !== undefined) {
    const sink = new ReportSink({ out: report, config, thumbnails });
    onCrop = sink.onCrop;
    sinks.push(sink);
    jobs.push(async () => {
      await sink.close();
      return `report written to ${report}`;
    });
  }
  if (annotate !== undefined) {
    const sink = new AnnotateSink(input, annotate);
    sinks.push(sink);
    jobs.push(async () => {
      const r = await sink.finish();
      return `annotated video written to ${annotate} (${r.tracks} tracks, ${r.observations} observations drawn)`;
    });
  }
  let finished: Promise<string[]> | undefined;
  return {
    sinks,
    ...(onCrop ? { onCrop } : {}),
    config,
    finish: () => (finished ??= (async () => {
      const lines: string[] = [];
      for (const job of jobs) lines.push(await job());
      return lines;
    })()),
  };
}

/** CLI options as JSON-friendly values (commander hands over plain values; drop anything else). */
function plainOptions(opts: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(opts).filter(([, v]) => ['string', 'number', 'boolean'].includes(typeof v)));
}

/** Keeps the stream's start and observations; draws them onto the input at finish. */
class AnnotateSink implements Sink {
  readonly name = 'annotate';
  readonly #input: string;
  readonly #output: string;
  readonly #events: TimelineEvent[] = [];
  #done: ReturnType<typeof annotateVideo> | undefined;

  constructor(input: string, output: string) {
    this.#input = input;
    this.#output = output;
  }

  async write(event: TimelineEvent): Promise<void> {
    // only what is drawn: about 400 bytes per face per frame
    if (event.type === 'stream.start' || event.type === 'face.observation') this.#events.push(event);
  }

  async flush(): Promise<void> {}

  finish(): ReturnType<typeof annotateVideo> {
    return (this.#done ??= annotateVideo(this.#events, { input: this.#input, output: this.#output }));
  }

  async close(): Promise<void> {
    // a run that never started (bad input, models missing) has nothing to draw
    if (this.#events.some((e) => e.type === 'stream.start')) await this.finish();
  }

  stats(): SinkStats {
    return { sent: this.#done ? this.#events.length : 0, buffered: this.#done ? 0 : this.#events.length, dropped: 0 };
  }
}
