// analyze() and watch() without an analyzer to manage: each subscription creates one, runs the input through
// it, and closes it when the input ends or the subscriber leaves, so nothing (ffmpeg, the detector thread,
// the ONNX sessions) outlives the subscription. Completion and errors are passed on only after the close, so a
// `for await` loop that has ended leaves nothing running. For many inputs, createAnalyzer() loads once.
import type { AnalyzeInput, AnalyzeOptions, AnalyzerOptions, TimelineEvent, WatchOptions } from '../types.js';
import { type Analyzer, ANALYZER_OPTION_KEYS, createAnalyzer } from './analyzer.js';
import { EventStream, producerOf } from './event-stream.js';

export type OneShotAnalyzeOptions = AnalyzeOptions & AnalyzerOptions;
export type OneShotWatchOptions = WatchOptions & AnalyzerOptions;

function split<T extends object>(options: T): { analyzer: AnalyzerOptions; rest: Omit<T, (typeof ANALYZER_OPTION_KEYS)[number]> } {
  const analyzer: Record<string, unknown> = {};
  const rest: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) ((ANALYZER_OPTION_KEYS as readonly string[]).includes(k) ? analyzer : rest)[k] = v;
  return { analyzer: analyzer as AnalyzerOptions, rest: rest as Omit<T, (typeof ANALYZER_OPTION_KEYS)[number]> };
}

function oneShot(make: (a: Analyzer) => EventStream<TimelineEvent>, analyzerOptions: AnalyzerOptions): EventStream<TimelineEvent> {
  return new EventStream<TimelineEvent>((out) => {
    const analyzer = createAnalyzer(analyzerOptions);
    // a failure to release is not the subscriber's error: the run's own outcome is what it gets
    const close = (): Promise<void> => analyzer.close().catch(() => undefined);
    let stream: EventStream<TimelineEvent>;
    try {
      stream = make(analyzer);
    } catch (err) {
      void close().then(() => out.error(err));
      return () => undefined;
    }
    const teardown = producerOf(stream)({
      next: (e) => out.next(e),
      error: (err) => void close().then(() => out.error(err)),
      complete: () => void close().then(() => out.complete()),
    });
    return () => {
      teardown();
      void close();
    };
  });
}

/** Analyses a file, photo or folder (or several) with models loaded for this subscription. */
export function analyze(input: AnalyzeInput | readonly AnalyzeInput[], options: OneShotAnalyzeOptions = {}): EventStream<TimelineEvent> {
  const { analyzer, rest } = split(options);
  createAnalyzer(analyzer); // checks the options now, where the mistake is, rather than on subscribe
  return oneShot((a) => a.analyze(input, rest), analyzer);
}

/** Watches a live camera with models loaded for this subscription. */
export function watch(url: string, options: OneShotWatchOptions = {}): EventStream<TimelineEvent> {
  const { analyzer, rest } = split(options);
  createAnalyzer(analyzer);
  return oneShot((a) => a.watch(url, rest), analyzer);
}
