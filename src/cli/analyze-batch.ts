// `cafe-stream analyze <folder>` and `analyze a.jpg b.mp4 …`: many photos and videos in one run, one shared
// detector and model stage, `--jobs N` files in flight at once. Every file is its own stream in the same JSONL
// (stream id = its path relative to the folder given, or its base name). A bad file is reported in one line
// and gets its stream.end (reason error); the other files still complete. The exit code at the end is that of
// the first failed file in input order (3 missing, 4 not a photo/video, 5 truncated, …), 0 when all succeeded.
//
// Folders are read one level deep (no recursion): files whose extension names a photo or a video, in name
// order; other files and sub-folders are skipped and counted.
import { readdirSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { CafeStreamError, ConfigError, errorLine } from '../errors.js';
import { createMediaSource, isPhotoPath } from '../ingest/image-source.js';
import { loadExpressionModel, type ExpressionModel } from '../model/expression-model.js';
import { loadFaceDetectorThread } from '../model/detector-thread.js';
import type { FaceDetector } from '../model/face-detector.js';
import { withPhotoRetry } from '../model/photo-detector.js';
import { FILE_DETECT_INTERVAL, resolvePipelineOptions } from '../pipeline/options.js';
import { type StreamResult, createPipeline, summarize } from '../pipeline/run.js';
import { StreamTimeline } from '../pipeline/timeline.js';
import { sinksFromOptions } from '../sinks/factory.js';
import type { Sink, TimelineEvent, TrackEndEvent } from '../types.js';
import type { AnalyzeOptions } from './analyze.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { formatSummary } from './summary.js';

export const VIDEO_EXTENSIONS = ['.mp4', '.mov', '.m4v', '.mkv', '.webm', '.avi', '.mpg', '.mpeg', '.ts', '.mts', '.m2ts', '.wmv', '.flv', '.3gp'];

export interface BatchItem {
  path: string;
  streamId: string;
}

/** True when the inputs need the batch path: several inputs, or a folder. */
export function isBatch(inputs: readonly string[]): boolean {
  if (inputs.length !== 1) return true;
  try {
    return statSync(inputs[0]!).isDirectory();
  } catch {
    return false; // a missing file: the single-file path reports it
  }
}

/** Inputs → files, folders expanded one level deep; unique stream ids. */
export function expandInputs(inputs: readonly string[]): { items: BatchItem[]; skipped: number } {
  const items: BatchItem[] = [];
  const used = new Set<string>();
  let skipped = 0;
  const push = (path: string, id: string): void => {
    let streamId = id;
    for (let k = 2; used.has(streamId); k++) streamId = `${id}#${k}`;
    used.add(streamId);
    items.push({ path, streamId });
  };
  for (const input of inputs) {
    let dir = false;
    try {
      dir = statSync(input).isDirectory();
    } catch {
      // missing: kept, so it is reported like any bad file
    }
    if (!dir) {
      push(input, basename(input));
      continue;
    }
    for (const e of readdirSync(input, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.name.startsWith('.')) continue;
      if (e.isFile() && (isPhotoPath(e.name) || VIDEO_EXTENSIONS.includes(extname(e.name).toLowerCase()))) {
        push(join(input, e.name), inputs.length === 1 ? e.name : `${basename(input)}/${e.name}`);
      } else {
        skipped++;
      }
    }
  }
  return { items, skipped };
}

export interface BatchFileResult {
  item: BatchItem;
  result?: StreamResult;
  error?: unknown;
}

export async function analyzeBatch(inputs: string[], opts: AnalyzeOptions & { jobs?: number }): Promise<number> {
  const info = (line: string): void => {
    if (!opts.quiet) process.stderr.write(`cafe-stream: ${line}\n`);
  };
  const fail = (err: unknown): number => {
    process.stderr.write(`cafe-stream: error: ${errorLine(err)}\n`);
    return exitCodeFor(err);
  };

  let items: BatchItem[];
  let pipelineOptions;
  let sinks: Sink[];
  try {
    if (typeof opts['report'] === 'string' || typeof opts['annotate'] === 'string') {
      throw new ConfigError('report', '--report and --annotate take a single input file, not a folder or several files');
    }
    const jobs = opts.jobs ?? 1;
    if (!Number.isInteger(jobs) || jobs < 1) throw new ConfigError('jobs', `--jobs must be a positive integer, got ${jobs}`);
    const expanded = expandInputs(inputs);
    items = expanded.items;
    if (expanded.skipped > 0) info(`skipped ${expanded.skipped} entries that are neither photos nor videos (by extension) or are folders`);
    if (items.length === 0) throw new ConfigError('input', `no photos or videos in ${inputs.join(', ')}`);
    pipelineOptions = resolvePipelineOptions({
      batch: { maxBatch: opts.batchSize, maxWaitMs: opts.batchMs },
      detection: { interval: opts.detectInterval ?? FILE_DETECT_INTERVAL },
    });
    sinks = await sinksFromOptions(opts);
  } catch (err) {
    return fail(err);
  }

  let detector: FaceDetector | undefined;
  let model: ExpressionModel | undefined;
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
    try {
      [detector, model] = await Promise.all([
        loadFaceDetectorThread({ model: opts.detector, ...(opts.tile ? { tile: true } : {}) }),
        loadExpressionModel({ modelsDir: opts.models, device: opts.device, log: info }),
      ]);
    } catch (err) {
      for (const item of items) await writeFailedStream(sinks, item.streamId, err);
      return fail(err);
    }
    info(`${items.length} files, ${opts.jobs ?? 1} at a time; detector ${detector.name}; model on ${model.provider}`);

    const tracks: TrackEndEvent[] = [];
    const photoStreams = new Set(items.filter((i) => isPhotoPath(i.path)).map((i) => i.streamId));
    const pipeline = createPipeline({
      detector: withPhotoRetry(detector, (id) => photoStreams.has(id)),
      model,
      sinks,
      options: pipelineOptions,
      onEvent: (e: TimelineEvent) => {
        if (e.type === 'track.end') tracks.push(e);
      },
    });
    const onAbort = (): void => {
      for (const s of pipeline.stats().activeStreams) pipeline.stop(s);
    };
    abort.signal.addEventListener('abort', onAbort, { once: true });

    const results: BatchFileResult[] = items.map((item) => ({ item }));
    let next = 0;
    let finished = 0;
    let fatal = false;
    const worker = async (): Promise<void> => {
      while (!abort.signal.aborted && !fatal && next < items.length) {
        const r = results[next++]!;
        const { item } = r;
        const source = createMediaSource({
          path: item.path,
          streamId: item.streamId,
          maxPending: Math.min(64, Math.max(8, opts.batchSize + 8)),
          ...(opts.sampleFps === undefined ? {} : { sampleFps: opts.sampleFps }),
        });
        try {
          // A file that does not open fails here in one line, before it takes a pipeline slot.
          await source.info();
          r.result = await pipeline.add(source);
          if (r.result.reason === 'error') r.error = r.result.error;
        } catch (err) {
          r.error = err;
          await writeFailedStream(sinks, item.streamId, err);
        }
        finished++;
        if (r.error !== undefined) {
          const line = errorLine(r.error);
          process.stderr.write(`cafe-stream: error: ${line.includes(item.path) ? '' : `${item.path}: `}${line}\n`);
          // the model stage or a sink is gone: every later file would fail the same way
          if (isFatal(r.error)) fatal = true;
        } else {
          const what = isPhotoPath(item.path) ? `${r.result!.tracks} faces` : `${r.result!.frames} frames, ${r.result!.tracks} tracks`;
          info(`[${finished}/${items.length}] ${item.streamId}: ${what}`);
        }
      }
    };
    await Promise.race([Promise.all(Array.from({ length: Math.min(opts.jobs ?? 1, items.length) }, worker)), pipeline.failed]);
    abort.signal.removeEventListener('abort', onAbort);
    const sinkError = pipeline.failure();
    await pipeline.close().catch(() => undefined);
    if (sinkError !== undefined) return fail(sinkError);

    if (!opts.quiet) {
      const summary = summarize(pipeline, results.flatMap((r) => (r.result ? [r.result] : [])), tracks, started);
      process.stderr.write(formatFiles(results) + formatSummary(summary));
    }
    if (abort.signal.aborted) return EXIT.interrupted;
    const firstBad = results.find((r) => r.error !== undefined || r.result === undefined);
    if (firstBad === undefined) return EXIT.ok;
    return firstBad.error === undefined ? EXIT.interrupted : exitCodeFor(firstBad.error);
  } catch (err) {
    return fail(err);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    detector?.close();
    await model?.close();
    for (const sink of sinks) await sink.close().catch(() => undefined);
  }
}

function isFatal(err: unknown): boolean {
  return err instanceof CafeStreamError && ['CS_ERR_MODEL_LOAD', 'CS_ERR_MODEL_MANIFEST', 'CS_ERR_INFERENCE', 'CS_ERR_SINK', 'CS_ERR_RETRIES_EXCEEDED'].includes(err.code);
}

/** One row per file: what it was and how it ended. */
export function formatFiles(results: readonly BatchFileResult[]): string {
  const rows = results.map((r) => [
    r.item.streamId,
    isPhotoPath(r.item.path) ? 'photo' : 'video',
    r.result ? String(r.result.frames) : '-',
    r.result ? String(r.result.tracks) : '-',
    r.error !== undefined ? `error: ${errorLine(r.error)}` : r.result ? 'ok' : 'not run',
  ]);
  const header = ['file', 'kind', 'frames', 'tracks', 'result'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (i === 4 ? 0 : row[i]!.length))));
  const fmt = (row: string[]): string => row.map((c, i) => (i === 4 ? c : i >= 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  const ok = results.filter((r) => r.error === undefined && r.result).length;
  return [`${ok} of ${results.length} files analysed`, fmt(header), widths.map((w, i) => '-'.repeat(i === 4 ? 6 : w)).join('  '), ...rows.map(fmt)].join('\n') + '\n';
}

/** A file that never opened: its timeline is just its end, with the cause. */
async function writeFailedStream(sinks: Sink[], streamId: string, err: unknown): Promise<void> {
  const events = new StreamTimeline(streamId).end('error', err);
  for (const e of events) for (const s of sinks) await s.write(e).catch(() => undefined);
}
