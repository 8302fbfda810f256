// `cafe-stream analyze <file>`: a recorded video in, its expression timeline out (JSONL), a summary on stderr.
//
// Built on the public API (src/index.ts): createAnalyzer() runs the file, this module writes its events to the
// sinks and views. Order of work: open the sinks (a bad --out fails first), then the analyzer probes the file (a
// missing or broken file fails in milliseconds, before seconds of model loading), loads the models, runs. Every failure ends
// the same way: the stream gets its stream.end (reason 'error', the cause in one line) so the JSONL written so
// far stays a valid, complete timeline, then one line `cafe-stream: error: <cause>` on stderr and the exit code
// of that class of error (exit-codes.ts).
import { Command, Option } from 'commander';
import { type Analyzer, createAnalyzer } from '../api/analyzer.js';
import { errorLine } from '../errors.js';
import { isMultiInput } from '../ingest/inputs.js';
import { FILE_DETECT_INTERVAL, REUSE_MAX_CHANGE, resolvePipelineOptions } from '../pipeline/options.js';
import { registerSinkOptions, sinksFromOptions } from '../sinks/factory.js';
import { type FileViews, registerViewOptions, viewsFromOptions } from '../views/cli-views.js';
import type { Sink, TrackEndEvent } from '../types.js';
import { analyzeBatch } from './analyze-batch.js';
import { type AnalyzeCliOptions, analyzerOptions, runSummary } from './analyze-options.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { defaultModelsDir } from './paths.js';
import { type ProgressReporter, createProgress } from './progress.js';
import { formatSummary } from './summary.js';
import { modelThreadCount, nonNegativeNumber, positiveInteger, positiveNumber } from './arg-parsers.js';

export type { AnalyzeCliOptions as AnalyzeOptions } from './analyze-options.js';

export function register(program: Command): void {
  const cmd = program
    .command('analyze')
    .description('analyse recorded videos and photos: per-face expression timeline as JSONL (stdout or --out), summary on stderr')
    .argument('<inputs...>', 'video files (anything ffmpeg reads), photos (jpg, png, webp, tiff, avif, gif, bmp; told apart by content) or folders of them');
  registerSinkOptions(cmd);
  registerViewOptions(cmd);
  cmd
    .option('--sample-fps <n>', 'analyse at most n frames per second of video (default: every frame)', positiveNumber)
    .addOption(new Option('--device <device>', 'where the expression models run (auto: a GPU when one works, else CPU)').choices(['auto', 'cpu', 'cuda', 'webgpu']).default('auto'))
    .addOption(new Option('--precision <p>', 'encoder copy: int8 (CPU default, 1.6x faster), float (GPU default; built by the trainer), auto').choices(['auto', 'float', 'int8']).default('auto'))
    .option('--models <dir>', 'folder with the encoder and head .onnx files and their manifests', defaultModelsDir())
    .option('--model-threads <n>', 'on the CPU: threads that read batches, each with its own session (default min(2, cores)); 0: on the main thread, ~150 MB less', modelThreadCount)
    .option('--batch-size <n>', 'face crops per model call (across all faces)', positiveInteger, 16)
    .option('--batch-ms <ms>', 'a batch leaves after this long even if not full', nonNegativeNumber, 30)
    .addOption(new Option('--detector <model>', "face detector: 'full' range (faces up to ~5 m) or 'short' (~2 m, faster)").choices(['short', 'full']).default('full'))
    .addOption(new Option('--detector-runtime <r>', "the detector's runtime: onnx (onnxruntime, ~5× faster per call) or tfjs (@tensorflow-models/face-detection on tfjs-wasm); the same weights").choices(['onnx', 'tfjs']).default('onnx'))
    .option('--reuse-change <n>', "a face whose crop changed by at most this mean grey level (0-255) since its last model read keeps that reading, read at least once a second; 0 reads every crop", nonNegativeNumber, REUSE_MAX_CHANGE)
    .option('--detect-interval <n>', 'run the face detector on every n-th frame; the tracker carries the boxes in between (earlier when a face moves fast, appears or leaves)', positiveInteger, FILE_DETECT_INTERVAL)
    .option('--tile', 'small faces in wide frames: scan native-resolution tiles every 2 s, look again around tracked faces in between')
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
video. Photos and videos are told apart by their content, not their name. Folders are read one level
deep (files whose content is a photo or a video; other files skipped). With a folder
or several inputs a bad file is reported in one line and the others still complete; the exit code is
then that of the first bad file in input order.

Exit codes: 0 ok, 2 usage, 3 no such file, 4 not a video/photo, 5 truncated/undecodable video or photo,
6 model did not load, 7 detection/inference failed, 8 sink failed, 130 interrupted.`,
    )
    .action(async (inputs: string[], opts: AnalyzeCliOptions) => {
      process.exitCode = isMultiInput(inputs) ? await analyzeBatch(inputs, opts) : await analyze(inputs[0]!, opts);
    });
}

/** Runs one analysis; returns the process exit code (never throws for expected failures). */
export async function analyze(file: string, opts: AnalyzeCliOptions): Promise<number> {
  const info = (line: string): void => {
    if (!opts.quiet) process.stderr.write(`cafe-stream: ${line}\n`);
  };
  const fail = (err: unknown): number => {
    process.stderr.write(`cafe-stream: error: ${errorLine(err)}\n`);
    return exitCodeFor(err);
  };

  let pipelineOptions;
  let analyzer: Analyzer;
  try {
    // resolved here only to show in the report; the analyzer checks the same values
    pipelineOptions = resolvePipelineOptions({
      batch: { maxBatch: opts.batchSize, maxWaitMs: opts.batchMs },
      detection: { interval: opts.detectInterval ?? FILE_DETECT_INTERVAL },
      ...(opts.reuseChange === undefined ? {} : { reuse: { maxChange: opts.reuseChange } }),
    });
    analyzer = createAnalyzer(analyzerOptions(opts, info));
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
  const started = performance.now();
  let progress: ProgressReporter | undefined;
  try {
    const tracks: TrackEndEvent[] = [];
    let streamError: unknown;
    let sinkError: unknown;
    const events = analyzer.analyze(file, {
      signal: abort.signal,
      ...(opts.sampleFps === undefined ? {} : { sampleFps: opts.sampleFps }),
      ...(views.onCrop ? { onCrop: views.onCrop } : {}),
      onProgress: (p) => progress?.update({ ...p, totalFrames: p.frames }),
    });
    try {
      // `for await` paces the analysis: a slow sink pauses decoding instead of queueing events
      loop: for await (const e of events) {
        if (e.type === 'stream.start') {
          const loaded = await analyzer.load();
          const stream = e.stream;
          Object.assign(views.config, { detector: loaded.detector, modelProvider: loaded.provider, pipeline: pipelineOptions });
          info(`${stream.streamId}: ${stream.width}x${stream.height}${stream.fps ? ` @ ${stream.fps.toFixed(2)} fps` : ''}` +
            `${stream.duration ? `, ${stream.duration.toFixed(1)} s` : ''}; detector ${loaded.detector}; model on ${loaded.provider}`);
          const rate = Math.min(stream.fps ?? 25, opts.sampleFps ?? Infinity);
          progress = createProgress({ enabled: !opts.quiet, ...(stream.duration !== undefined ? { total: stream.duration * rate } : {}) });
        }
        if (e.type === 'track.end') tracks.push(e);
        try {
          for (const sink of sinks) await sink.write(e);
        } catch (err) {
          sinkError = err;
          break loop;
        }
      }
    } catch (err) {
      streamError = err;
    } finally {
      progress?.stop();
    }
    if (sinkError !== undefined) return fail(sinkError);
    // the report and the annotated video show what was analysed, also when the stream ended in an error
    let viewError: unknown;
    try {
      for (const line of await views.finish()) info(line);
    } catch (err) {
      viewError = err;
    }
    if (streamError !== undefined) return fail(streamError);
    if (viewError !== undefined) return fail(viewError);
    if (!opts.quiet) process.stderr.write(formatSummary(runSummary(analyzer, tracks, started)));
    return interrupted ? EXIT.interrupted : EXIT.ok;
  } catch (err) {
    return fail(err);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await analyzer.close();
    for (const sink of sinks) await sink.close().catch(() => undefined);
  }
}

