// `cafe-stream analyze <folder>` and `analyze a.jpg b.mp4 …`: many photos and videos in one run through one
// analyzer (src/api/analyzer.ts: one shared detector and model stage), `--jobs N` files in flight at once. Every
// file is its own stream in the same JSONL (stream id = its path relative to the folder given, or its base
// name). A bad file is reported in one line and gets its stream.end (reason error); the other files still
// complete. The exit code at the end is that of the first failed file in input order (3 missing, 4 not a
// photo/video, 5 truncated, …), 0 when all succeeded.
//
// Folders are read one level deep (no recursion): files whose content is a photo or a video (ingest/inputs.ts),
// in name order; other files and sub-folders are skipped and counted.
import { createAnalyzer, type Analyzer } from '../api/analyzer.js';
import { ConfigError, errorLine } from '../errors.js';
import { type InputItem, expandInputs } from '../ingest/inputs.js';
import { sniffMedia } from '../ingest/sniff.js';
import { sinksFromOptions } from '../sinks/factory.js';
import type { Sink, StreamEndEvent, TrackEndEvent } from '../types.js';
import { type AnalyzeCliOptions, analyzerOptions, runSummary } from './analyze-options.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { formatSummary } from './summary.js';

export interface BatchFileResult {
  item: InputItem;
  kind: 'photo' | 'video';
  /** the file's stream.end, when it has one. */
  end?: StreamEndEvent;
}

export async function analyzeBatch(inputs: string[], opts: AnalyzeCliOptions): Promise<number> {
  const info = (line: string): void => {
    if (!opts.quiet) process.stderr.write(`cafe-stream: ${line}\n`);
  };
  const fail = (err: unknown): number => {
    process.stderr.write(`cafe-stream: error: ${errorLine(err)}\n`);
    return exitCodeFor(err);
  };

  let items: InputItem[];
  let sinks: Sink[];
  let analyzer: Analyzer;
  const jobs = opts.jobs ?? 1;
  try {
    if (typeof opts['report'] === 'string' || typeof opts['annotate'] === 'string') {
      throw new ConfigError('report', '--report and --annotate take a single input file, not a folder or several files');
    }
    if (!Number.isInteger(jobs) || jobs < 1) throw new ConfigError('jobs', `--jobs must be a positive integer, got ${jobs}`);
    analyzer = createAnalyzer(analyzerOptions(opts, info));
    const expanded = await expandInputs(inputs);
    items = expanded.items;
    if (expanded.skipped > 0) info(`skipped ${expanded.skipped} entries that are neither photos nor videos (by content) or are folders`);
    if (items.length === 0) throw new ConfigError('input', `no photos or videos in ${inputs.join(', ')}`);
    sinks = await sinksFromOptions(opts);
  } catch (err) {
    return fail(err);
  }

  const abort = new AbortController();
  const onSignal = (): void => {
    if (abort.signal.aborted) process.exit(EXIT.interrupted);
    info('interrupted: finishing the files in flight (press Ctrl-C again to quit at once)');
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const started = performance.now();
  try {
    const results: BatchFileResult[] = await Promise.all(
      items.map(async (item) => ({ item, kind: (await sniffMedia(item.path)) === 'photo' ? ('photo' as const) : ('video' as const) })),
    );
    const byStream = new Map(results.map((r) => [r.item.streamId, r]));
    const tracks: TrackEndEvent[] = [];
    let finished = 0;
    let said = false;
    let lastLine: string | undefined;
    let runError: unknown;
    let sinkError: unknown;
    try {
      loop: for await (const e of analyzer.analyze(items, { concurrency: jobs, signal: abort.signal, ...(opts.sampleFps === undefined ? {} : { sampleFps: opts.sampleFps }) })) {
        try {
          for (const sink of sinks) await sink.write(e);
        } catch (err) {
          sinkError = err;
          break loop;
        }
        if (e.type === 'stream.start' && !said) {
          said = true;
          const loaded = await analyzer.load();
          info(`${items.length} files, ${jobs} at a time; detector ${loaded.detector}; model on ${loaded.provider}`);
        } else if (e.type === 'track.end') tracks.push(e);
        else if (e.type === 'stream.end') {
          const r = byStream.get(e.streamId);
          if (r === undefined) continue;
          r.end = e;
          finished++;
          if (e.reason === 'error') {
            const line = e.error ?? 'unknown error';
            // a model that did not load fails every file the same way: say it once
            if (line !== lastLine) process.stderr.write(`cafe-stream: error: ${line.includes(r.item.path) ? '' : `${r.item.path}: `}${line}\n`);
            lastLine = line;
          } else {
            const what = r.kind === 'photo' ? `${e.tracks} faces` : `${e.frames} frames, ${e.tracks} tracks`;
            info(`[${finished}/${items.length}] ${e.streamId}: ${what}`);
          }
        }
      }
    } catch (err) {
      runError = err;
    }
    if (sinkError !== undefined) return fail(sinkError);
    if (!opts.quiet) process.stderr.write(formatFiles(results) + formatSummary(runSummary(analyzer, tracks, started)));
    if (runError !== undefined) return exitCodeFor(runError);
    if (abort.signal.aborted || results.some((r) => r.end === undefined)) return EXIT.interrupted;
    return EXIT.ok;
  } catch (err) {
    return fail(err);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await analyzer.close();
    for (const sink of sinks) await sink.close().catch(() => undefined);
  }
}

/** One row per file: what it was and how it ended. */
export function formatFiles(results: readonly BatchFileResult[]): string {
  const rows = results.map((r) => [
    r.item.streamId,
    r.kind,
    r.end ? String(r.end.frames) : '-',
    r.end ? String(r.end.tracks) : '-',
    r.end === undefined ? 'not run' : r.end.reason === 'error' ? `error: ${r.end.error ?? 'unknown error'}` : 'ok',
  ]);
  const header = ['file', 'kind', 'frames', 'tracks', 'result'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (i === 4 ? 0 : row[i]!.length))));
  const fmt = (row: string[]): string => row.map((c, i) => (i === 4 ? c : i >= 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  const ok = results.filter((r) => r.end !== undefined && r.end.reason !== 'error').length;
  return [`${ok} of ${results.length} files analysed`, fmt(header), widths.map((w, i) => '-'.repeat(i === 4 ? 6 : w)).join('  '), ...rows.map(fmt)].join('\n') + '\n';
}
