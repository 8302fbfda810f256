// `cafe-stream analyze <file>`: a recorded video in, its expression timeline out (JSONL), a summary on stderr.
//
// Order of work: open the sinks (a bad --out fails first), probe the file (a missing or broken file fails in
// milliseconds, before seconds of model loading), load the detector and the models, run. Every failure ends
// the same way: the stream gets its stream.end (reason 'error', the cause in one line) so the JSONL written so
// far stays a valid, complete timeline, then one line `cafe-stream: error: <cause>` on stderr and the exit code
// of that class of error (exit-codes.ts).
import { Command, InvalidArgumentError, Option } from 'commander';
import { errorLine } from '../errors.js';
import { createMediaSource, isPhotoPath } from '../ingest/image-source.js';
import { withPhotoRetry } from '../model/photo-detector.js';
import { loadFaceDetectorThread } from '../model/detector-thread.js';
import type { FaceDetector } from '../model/face-detector.js';
import { loadExpressionModel, type ExpressionModel } from '../model/expression-model.js';
import { FILE_DETECT_INTERVAL, resolvePipelineOptions } from '../pipeline/options.js';
import { type RunSummary, firstStreamError, runPipeline } from '../pipeline/run.js';
import { StreamTimeline } from '../pipeline/timeline.js';
import { registerSinkOptions, sinksFromOptions } from '../sinks/factory.js';
import { type FileViews, registerViewOptions, viewsFromOptions } from '../views/cli-views.js';
import type { Sink, StreamInfo } from '../types.js';
import { analyzeBatch, isBatch } from './analyze-batch.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { defaultModelsDir } from './paths.js';
import { createProgress } from './progress.js';
import { formatSummary } from './summary.js';

export interface AnalyzeOptions {
  out?: string;
  sampleFps?: number;
  device: 'auto' | 'cpu' | 'cuda' | 'webgpu';
  models: string;
  batchSize: number;
  batchMs: number;
  detector: 'short' | 'full';
  tile?: boolean;
  /** run the detector on every N-th frame, the tracker carries the boxes in between. */
  detectInterval?: number;
  quiet?: boolean;
  /** files analysed at once when given a folder or several files. */
  jobs?: number;
  [sinkOption: string]: unknown;
}

export function register(program: Command): void {
  const cmd = program
    .command('analyze')
    .description('analyse recorded videos and photos: per-face expression timeline as JSONL (stdout or --out), summary on stderr')
    .argument('<inputs...>', 'video files (anything ffmpeg reads), photos (jpg, png, webp, tiff, avif, gif) or folders of them');
  registerSinkOptions(cmd);
  registerViewOptions(cmd);
  cmd
    .option('--sample-fps <n>', 'analyse at most n frames per second of video (default: every frame)', positiveNumber)
    .addOption(new Option('--device <device>', 'where the expression models run (auto: a GPU when one works, else CPU)').choices(['auto', 'cpu', 'cuda', 'webgpu']).default('auto'))
    .option('--models <dir>', 'folder with the encoder and head .onnx files and their manifests', defaultModelsDir())
    .option('--batch-size <n>', 'face crops per model call (across all faces)', positiveInteger, 16)
    .option('--batch-ms <ms>', 'a batch leaves after this long even if not full', nonNegativeNumber, 30)
    .addOption(new Option('--detector <model>', "face detector: 'full' range (faces up to ~5 m) or 'short' (~2 m, faster)").choices(['short', 'full']).default('full'))
    .option('--detect-interval <n>', 'run the face detector on every n-th frame; the tracker carries the boxes in between (earlier when a face moves fast, appears or leaves)', positiveInteger, FILE_DETECT_INTERVAL)
    .option('--tile', 'also detect on a 2x2 grid of tiles (smaller faces, ~5x slower detection)')
    .option('-q, --quiet', 'no progress bar, no summary table, no info lines (errors still print)')
    .option('--jobs <n>', 'with a folder or several inputs: files analysed at once', positiveInteger, 1)
    .addHelpText(
      'after',
      `
Examples:
  cafe-stream analyze clip.mp4 > events.jsonl
  cafe-stream analyze clip.mp4 --out events.jsonl --sample-fps 10
  cafe-stream analyze clip.mp4 --out events.jsonl --report report.html --annotate annotated.mp4
  cafe-stream analyze photo.jpg                 one stream of one frame: one face.observation per face
  cafe-stream analyze photos/ clips/ --jobs 2 --out events.jsonl

A photo is a stream of one frame at time 0 (duration 0): every face the detector finds, cropped as for
video. Folders are read one level deep (photo and video extensions; other files skipped). With a folder
or several inputs a bad file is reported in one line and the others still complete; the exit code is
then that of the first bad file in input order.

Exit codes: 0 ok, 2 usage, 3 no such file, 4 not a video/photo, 5 truncated/undecodable video or photo,
6 model did not load, 7 detection/inference failed, 8 sink failed, 130 interrupted.`,
    )
    .action(async (inputs: string[], opts: AnalyzeOptions) => {
      process.exitCode = isBatch(inputs) ? await analyzeBatch(inputs, opts) : await analyze(inputs[0]!, opts);
    });
}

/** Runs one analysis; returns the process exit code (never throws for expected failures). */
export async function analyze(file: string, opts: AnalyzeOptions): Promise<number> {
  const info = (line: string): void => {
    if (!opts.quiet) process.stderr.write(`cafe-stream: ${line}\n`);
  };
  const fail = (err: unknown): number => {
    process.stderr.write(`cafe-stream: error: ${errorLine(err)}\n`);
    return exitCodeFor(err);
  };

  let pipelineOptions;
  try {
    pipelineOptions = resolvePipelineOptions({
      batch: { maxBatch: opts.batchSize, maxWaitMs: opts.batchMs },
      detection: { interval: opts.detectInterval ?? FILE_DETECT_INTERVAL },
    });
  } catch (err) {
    return fail(err);
  }

  let sinks: Sink[];
  let views: FileViews;
  try {
    views = viewsFromOptions(file, opts);
    sinks = [...(await sinksFromOptions(opts)), ...views.sinks];
  } catch (err) {
    return fail(err);
  }

  // From here on, whatever happens, the sinks are closed and the stream has its stream.end.
  let detector: FaceDetector | undefined;
  let model: ExpressionModel | undefined;
  const abort = new AbortController();
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) {
      // Second signal: leave now. Lines already written are whole (one write call each).
      process.exit(EXIT.interrupted);
    }
    interrupted = true;
    info('interrupted: finishing the timeline (press Ctrl-C again to quit at once)');
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    // Enough frames out to fill a batch from a single face, few enough to bound memory (a 1080p frame is 6 MB).
    const maxPending = Math.min(64, Math.max(8, opts.batchSize + 8));
    const source = createMediaSource({ path: file, maxPending, ...(opts.sampleFps === undefined ? {} : { sampleFps: opts.sampleFps }) });

    let stream: StreamInfo;
    let loaded: [FaceDetector, ExpressionModel];
    try {
      stream = await source.info();
      loaded = await Promise.all([
        // on its own thread: onnxruntime-node runs inference on the calling (main) thread, so a detector there
        // would take turns with the model instead of running beside it (bench/overlap.ts)
        loadFaceDetectorThread({ model: opts.detector, ...(opts.tile ? { tile: true } : {}) }).then((d) => (detector = d)),
        loadExpressionModel({ modelsDir: opts.models, device: opts.device, log: info }).then((m) => (model = m)),
      ]);
    } catch (err) {
      await writeFailedStream(sinks, source.streamId, err);
      return fail(err);
    }
    Object.assign(views.config, { detector: loaded[0].name, modelProvider: loaded[1].provider, pipeline: pipelineOptions });
    info(`${stream.streamId}: ${stream.width}x${stream.height}${stream.fps ? ` @ ${stream.fps.toFixed(2)} fps` : ''}` +
      `${stream.duration ? `, ${stream.duration.toFixed(1)} s` : ''}; detector ${loaded[0].name}; model on ${loaded[1].provider}`);

    const rate = Math.min(stream.fps ?? 25, opts.sampleFps ?? Infinity);
    const progress = createProgress({
      enabled: !opts.quiet,
      ...(stream.duration !== undefined ? { total: stream.duration * rate } : {}),
    });
    let summary: RunSummary;
    try {
      summary = await runPipeline({
        sources: [source],
        detector: isPhotoPath(file) ? withPhotoRetry(loaded[0], () => true) : loaded[0],
        model: loaded[1],
        sinks,
        options: pipelineOptions,
        onProgress: (p) => progress.update(p),
        signal: abort.signal,
        ...(views.onCrop ? { onCrop: views.onCrop } : {}),
      });
    } finally {
      progress.stop();
    }
    const streamError = firstStreamError(summary);
    // the report and the annotated video show what was analysed, also when the stream ended in an error
    let viewError: unknown;
    try {
      for (const line of await views.finish()) info(line);
    } catch (err) {
      viewError = err;
    }
    if (streamError !== undefined) return fail(streamError);
    if (viewError !== undefined) return fail(viewError);
    if (!opts.quiet) process.stderr.write(formatSummary(summary));
    return interrupted ? EXIT.interrupted : EXIT.ok;
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

/** The stream never got going: its timeline is just its end, with the cause. */
async function writeFailedStream(sinks: Sink[], streamId: string, err: unknown): Promise<void> {
  const events = new StreamTimeline(streamId).end('error', err);
  for (const e of events) for (const s of sinks) await s.write(e).catch(() => undefined);
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
}

function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('must be a number >= 0');
  return n;
}

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}
