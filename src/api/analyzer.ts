// createAnalyzer(): the detector and the expression models loaded once, and every input run through one
// shared, batched model stage (createPipeline in pipeline/run.ts), as `cafe-stream analyze --jobs` and
// `cafe-stream live` do. Each analyze()/watch() call is a cold EventStream: subscribing opens the input and
// (on first use) loads the models; unsubscribing stops its streams at once (ffmpeg is killed by the source's
// teardown); close() ends everything and releases the models and the detector thread.
//
// The pipeline's one sink is a router: it hands each event to the call that owns its stream and waits on that
// consumer's pace, so a slow `for await` body pauses decoding (file sources are lossless) instead of queueing.
import { basename } from 'node:path';
import { CafeStreamError, ConfigError } from '../errors.js';
import { AdmissionGate, LIVE_FRAMES_IN_FLIGHT } from '../ingest/admission.js';
import { type InputItem, expandInputs, isMultiInput } from '../ingest/inputs.js';
import { framesPendingFor } from '../ingest/file-source.js';
import { openMediaSource } from '../ingest/image-source.js';
import { prestart } from '../ingest/prestart.js';
import { createRtspSource, redactUrl } from '../ingest/rtsp-source.js';
import { defaultModelsDir } from '../paths.js';
import { loadFaceDetectorThread } from '../model/detector-thread.js';
import type { ExpressionModel } from '../model/expression-model.js';
import { checkModelThreads, CPU_MODEL_THREADS } from '../model/model-thread-count.js';
import { loadExpressionModelThreads } from '../model/model-threads.js';
import { DETECTOR_RUNTIMES, type FaceDetector } from '../model/face-detector.js';
import { withPhotoRetry } from '../model/photo-detector.js';
import { eventBase } from '../pipeline/events.js';
import { FILE_DETECT_INTERVAL, LIVE_DETECT_INTERVAL, REUSE_MAX_CHANGE, type PipelineOptionsInput } from '../pipeline/options.js';
import { type Pipeline, createPipeline } from '../pipeline/run.js';
import { StreamTimeline } from '../pipeline/timeline.js';
import type {
  AnalysisProgress,
  AnalyzeInput,
  AnalyzeOptions,
  AnalyzerOptions,
  AnalyzerStats,
  FaceCrop,
  LoadedModels,
  Sink,
  TimelineEvent,
  WatchOptions,
} from '../types.js';
import { EventStream, type PacedTarget } from './event-stream.js';

export interface Analyzer {
  /** Loads the detector and the models (once; later calls share the first load). Optional: analyze() loads on first use. */
  load(): Promise<LoadedModels>;
  /** A file, photo or folder (or several): its timeline events. */
  analyze(input: AnalyzeInput | readonly AnalyzeInput[], options?: AnalyzeOptions): EventStream<TimelineEvent>;
  /** A live camera (rtsp://…): its timeline events until stopped; the camera is reconnected when it drops. */
  watch(url: string, options?: WatchOptions): EventStream<TimelineEvent>;
  stats(): AnalyzerStats;
  /** Stops every stream (each gets its stream.end), then releases the models and the detector thread. */
  close(): Promise<void>;
}

const DEVICES = ['auto', 'cpu', 'cuda', 'webgpu'];
const PRECISIONS = ['auto', 'float', 'int8'];
const DETECTORS = ['short', 'full'];
/** Errors after which every later input would fail the same way. */
const FATAL_CODES = ['CS_ERR_MODEL_LOAD', 'CS_ERR_MODEL_MANIFEST', 'CS_ERR_INFERENCE', 'CS_ERR_CONFIG'];

interface Route {
  next(event: TimelineEvent): void | Promise<void>;
  progress?: (p: AnalysisProgress) => void;
  crop?: (c: FaceCrop) => void;
}

interface Loaded {
  detector: FaceDetector;
  model: ExpressionModel;
}

export function createAnalyzer(options: AnalyzerOptions = {}): Analyzer {
  const o = checkOptions(options);
  const log = options.log ?? ((): void => undefined);
  const routes = new Map<string, Route>();
  const photoStreams = new Set<string>();
  const counters = { loads: 0, streams: 0 };
  let loading: Promise<Loaded> | undefined;
  let filePipeline: Pipeline | undefined;
  let livePipeline: Pipeline | undefined;
  let closing: Promise<void> | undefined;
  // live cameras share one bound on frames in flight, as in `cafe-stream live`
  const gate = new AdmissionGate(LIVE_FRAMES_IN_FLIGHT);

  const router: Sink = {
    name: 'analyzer',
    write: async (event) => {
      const r = routes.get(event.streamId);
      if (r !== undefined) await r.next(event);
    },
    flush: async () => undefined,
    close: async () => undefined,
    stats: () => ({ sent: 0, buffered: 0, dropped: 0 }),
  };

  function load(): Promise<Loaded> {
    if (closing !== undefined) return Promise.reject(new ConfigError('analyzer', 'this analyzer is closed'));
    loading ??= (async () => {
      counters.loads++;
      const [detector, model] = await Promise.allSettled([
        // on its own thread, so detection runs beside the model instead of taking turns (detector-thread.ts)
        loadFaceDetectorThread({ model: o.detector, runtime: o.detectorRuntime, ...(o.tile ? { tile: true } : {}) }),
        loadExpressionModelThreads({ modelsDir: o.models, device: o.device, precision: o.precision, modelThreads: o.modelThreads, log }),
      ]);
      if (detector.status === 'fulfilled' && model.status === 'fulfilled') return { detector: detector.value, model: model.value };
      if (detector.status === 'fulfilled') await detector.value.close();
      if (model.status === 'fulfilled') await model.value.close();
      throw detector.status === 'rejected' ? detector.reason : (model as PromiseRejectedResult).reason;
    })();
    // a failed load may be retried by a later call (a GPU that was busy, a models folder fixed meanwhile)
    loading.catch(() => (loading = undefined));
    return loading;
  }

  function pipelineFor(kind: 'file' | 'live', loaded: Loaded): Pipeline {
    const existing = kind === 'file' ? filePipeline : livePipeline;
    if (existing !== undefined) return existing;
    const pipelineOptions: PipelineOptionsInput = {
      batch: { maxBatch: o.batchSize, maxWaitMs: o.batchMs },
      detection: { interval: kind === 'file' ? o.detectInterval : LIVE_DETECT_INTERVAL },
      reuse: { maxChange: o.reuseChange },
    };
    const p = createPipeline({
      detector: kind === 'file' ? withPhotoRetry(loaded.detector, (id) => photoStreams.has(id)) : loaded.detector,
      model: loaded.model,
      sinks: [router],
      options: pipelineOptions,
      onProgress: (u) => routes.get(u.streamId)?.progress?.({ streamId: u.streamId, frameId: u.frameId, pts: u.pts, faces: u.faces, frames: u.frames, tracks: u.tracks }),
      onCrop: (c) => routes.get(c.streamId)?.crop?.(c),
    });
    if (kind === 'file') filePipeline = p;
    else livePipeline = p;
    return p;
  }

  /** A stream id not in use: `id`, else `id#2`, `id#3`, … */
  function claimId(id: string, route: Route): string {
    let streamId = id;
    for (let k = 2; routes.has(streamId); k++) streamId = `${id}#${k}`;
    routes.set(streamId, route);
    counters.streams++;
    return streamId;
  }

  function analyze(input: AnalyzeInput | readonly AnalyzeInput[], opts: AnalyzeOptions = {}): EventStream<TimelineEvent> {
    const inputs = (Array.isArray(input) ? input : [input]) as readonly AnalyzeInput[];
    const concurrency = opts.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new ConfigError('concurrency', `concurrency must be a positive integer, got ${concurrency}`);
    if (opts.sampleFps !== undefined && !(opts.sampleFps > 0)) throw new ConfigError('sampleFps', `sampleFps must be a positive number, got ${opts.sampleFps}`);
    if (inputs.length === 0) throw new ConfigError('input', 'analyze() needs at least one input');

    return new EventStream<TimelineEvent>((out) => {
      let left = false;
      let stopped = opts.signal?.aborted === true;
      const running = new Set<string>();
      const stopAll = (): void => {
        for (const id of running) filePipeline?.stop(id);
      };
      const onAbort = (): void => {
        stopped = true;
        stopAll();
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const route: Omit<Route, 'next'> = {
        ...(opts.onProgress ? { progress: opts.onProgress } : {}),
        ...(opts.onCrop ? { crop: opts.onCrop } : {}),
      };
      const emit = (e: TimelineEvent): void | Promise<void> => (left ? undefined : out.next(e));

      /** One file to its end; resolves with its error, if any. */
      const runOne = async (item: InputItem): Promise<unknown> => {
        const streamId = claimId(item.streamId, { ...route, next: emit });
        try {
          let opened;
          try {
            // the pipeline reads no frame after releasing it: the source may write later frames into its buffers
            opened = await openMediaSource({ path: item.path, streamId, maxPending: framesPendingFor(o.batchSize), reuseBuffers: true, ...(opts.sampleFps === undefined ? {} : { sampleFps: opts.sampleFps }) });
            // The models load while the file is probed and its first frames decode (prestart): on a first file
            // that is ~0.5 s of a start's wall time. The probe's verdict still comes first: a missing or broken
            // file is reported as such, in milliseconds, whatever the loading does.
            const loading = load();
            loading.catch(() => undefined); // awaited below unless the probe fails first, which is then the run's error
            await opened.source.info();
            if (left || stopped) return undefined;
            const source = prestart(opened.source);
            let loaded: Loaded;
            try {
              loaded = await loading;
            } catch (err) {
              source.cancel();
              throw err;
            }
            if (left || stopped) {
              source.cancel();
              return undefined;
            }
            const pipeline = pipelineFor('file', loaded);
            if (opened.photo) photoStreams.add(streamId);
            running.add(streamId);
            const result = await pipeline.add(source);
            return result.reason === 'error' ? (result.error ?? new CafeStreamError('CS_ERR_INFERENCE', `${streamId}: stream ended with an error`)) : undefined;
          } catch (err) {
            await emitFailedStream(streamId, err, emit);
            return err;
          }
        } finally {
          running.delete(streamId);
          photoStreams.delete(streamId);
          routes.delete(streamId);
        }
      };

      const run = async (): Promise<void> => {
        let items: InputItem[];
        const given = inputs.map((i) => (typeof i === 'string' ? { path: i } : i));
        if (given.length === 1 && given[0]!.streamId !== undefined) items = [{ path: given[0]!.path, streamId: given[0]!.streamId }];
        else if (given.every((g) => g.streamId !== undefined)) items = given as InputItem[];
        else if (!isMultiInput(given.map((g) => g.path))) items = [{ path: given[0]!.path, streamId: opts.streamId ?? basename(given[0]!.path) }];
        else {
          const expanded = await expandInputs(given.map((g) => g.path));
          items = expanded.items;
          if (expanded.skipped > 0) log(`skipped ${expanded.skipped} entries that are neither photos nor videos or are folders`);
          if (items.length === 0) throw new ConfigError('input', `no photos or videos in ${given.map((g) => g.path).join(', ')}`);
        }
        const errors: unknown[] = new Array(items.length);
        let next = 0;
        let fatal: unknown;
        const worker = async (): Promise<void> => {
          while (!left && !stopped && next < items.length) {
            const k = next++;
            const item = items[k]!;
            if (fatal !== undefined) {
              // the model stage is gone: every later file gets its stream.end with the same cause
              await emitFailedStream(claimId(item.streamId, { next: emit }), fatal, emit, routes);
              errors[k] = fatal;
              continue;
            }
            errors[k] = await runOne(item);
            if (isFatal(errors[k])) fatal ??= errors[k];
          }
        };
        await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
        const firstError = errors.find((e) => e !== undefined);
        if (firstError !== undefined) throw firstError;
      };

      run().then(
        () => {
          opts.signal?.removeEventListener('abort', onAbort);
          if (!left) out.complete();
        },
        (err: unknown) => {
          opts.signal?.removeEventListener('abort', onAbort);
          if (!left) out.error(err);
        },
      );
      return () => {
        left = true;
        opts.signal?.removeEventListener('abort', onAbort);
        stopAll();
      };
    });
  }

  function watch(url: string, opts: WatchOptions = {}): EventStream<TimelineEvent> {
    if (typeof url !== 'string' || url === '') throw new ConfigError('url', 'watch() needs a camera URL, e.g. rtsp://127.0.0.1:8554/cam');
    return new EventStream<TimelineEvent>((out) => {
      let left = false;
      const emit = (e: TimelineEvent): void | Promise<void> => (left ? undefined : out.next(e));
      const streamId = claimId(opts.streamId ?? defaultStreamId(url), { next: emit, ...(opts.onProgress ? { progress: opts.onProgress } : {}) });
      const source = createRtspSource({
        url,
        streamId,
        gate,
        ...(opts.transport === undefined ? {} : { transport: opts.transport }),
        ...(opts.sampleFps === undefined ? {} : { sampleFps: opts.sampleFps }),
        ...(opts.maxWidth === undefined ? {} : { maxWidth: opts.maxWidth }),
        ...(opts.stallSeconds === undefined ? {} : { stallSeconds: opts.stallSeconds }),
        log: (level, msg) => (level === 'debug' ? undefined : log(`${streamId}: ${msg}`)),
      });
      let pipeline: Pipeline | undefined;
      let statusChain: Promise<void> = Promise.resolve();
      const status = source.events$.subscribe((st) => {
        if (st.state === 'online') {
          statusChain = statusChain.then(() => emit({ ...eventBase(streamId, st.at), type: 'stream.online', attempt: st.attempt }));
        } else if (st.state === 'offline') {
          // a face cannot be followed across an outage: its track ends now, not when the camera returns
          pipeline?.interrupt(streamId, 'stream-offline');
          const retryIn = Math.round((st.retryIn ?? 0) * 1000) / 1000;
          statusChain = statusChain.then(() => emit({ ...eventBase(streamId, st.at), type: 'stream.offline', reason: st.reason ?? 'unknown', retryIn }));
        }
      });
      let stopRequested = false;
      const stop = (): void => {
        stopRequested = true;
        pipeline?.stop(streamId);
        void source.close();
      };
      if (opts.signal?.aborted) stop();
      opts.signal?.addEventListener('abort', stop, { once: true });
      const run = async (): Promise<void> => {
        const loaded = await load().catch(async (err: unknown) => {
          await emitFailedStream(streamId, err, emit);
          throw err;
        });
        if (left) return;
        // a camera stopped before it ever connected ends 'stopped', like one stopped later, not with an error
        const connected = await source.info().then(
          () => true,
          async (err: unknown) => {
            if (!stopRequested) {
              await emitFailedStream(streamId, err, emit);
              throw err;
            }
            return false;
          },
        );
        if (!connected) {
          for (const e of new StreamTimeline(streamId).end('stopped')) await emit(e);
          return;
        }
        if (left || stopRequested) {
          for (const e of new StreamTimeline(streamId).end('stopped')) await emit(e);
          return;
        }
        pipeline = pipelineFor('live', loaded);
        const result = await pipeline.add(source);
        await statusChain;
        if (result.reason === 'error') throw result.error;
      };
      run()
        .finally(() => {
          status.unsubscribe();
          routes.delete(streamId);
          opts.signal?.removeEventListener('abort', stop);
          return source.close();
        })
        .then(
          () => (left ? undefined : out.complete()),
          (err: unknown) => (left ? undefined : out.error(err)),
        );
      return () => {
        left = true;
        stop();
      };
    });
  }

  async function close(): Promise<void> {
    closing ??= (async () => {
      for (const p of [filePipeline, livePipeline]) if (p !== undefined) for (const id of p.stats().activeStreams) p.stop(id);
      await Promise.all([filePipeline?.close(), livePipeline?.close()]);
      const loaded = await loading?.catch(() => undefined);
      await Promise.all([loaded?.detector.close(), loaded?.model.close()]);
    })();
    return closing;
  }

  function stats(): AnalyzerStats {
    const ps = [filePipeline, livePipeline].flatMap((p) => (p === undefined ? [] : [p.stats()]));
    const sum = (k: 'frames' | 'crops' | 'reused' | 'batches' | 'events'): number => ps.reduce((n, s) => n + s[k], 0);
    return {
      loads: counters.loads,
      activeStreams: [...routes.keys()],
      streams: counters.streams,
      frames: sum('frames'),
      crops: sum('crops'),
      reused: sum('reused'),
      batches: sum('batches'),
      events: sum('events'),
    };
  }

  return {
    load: async () => {
      const l = await load();
      return { detector: l.detector.name, provider: l.model.provider };
    },
    analyze,
    watch,
    stats,
    close,
  };
}

/** A stream that never got going: its timeline is just its end, with the cause. */
async function emitFailedStream(streamId: string, err: unknown, emit: PacedTarget<TimelineEvent>['next'], routes?: Map<string, Route>): Promise<void> {
  try {
    for (const e of new StreamTimeline(streamId).end('error', err)) await emit(e);
  } finally {
    routes?.delete(streamId);
  }
}

function isFatal(err: unknown): boolean {
  return err instanceof CafeStreamError && FATAL_CODES.includes(err.code);
}

function defaultStreamId(url: string): string {
  try {
    const u = new URL(url);
    return `${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return redactUrl(url);
  }
}

/** Every option createAnalyzer() knows (analyze() tells them from its per-call ones by this list). */
export const ANALYZER_OPTION_KEYS = ['models', 'device', 'precision', 'modelThreads', 'detector', 'detectorRuntime', 'tile', 'batchSize', 'batchMs', 'detectInterval', 'reuseChange', 'log'] as const satisfies readonly (keyof AnalyzerOptions)[];

interface CheckedOptions {
  models: string;
  device: NonNullable<AnalyzerOptions['device']>;
  precision: NonNullable<AnalyzerOptions['precision']>;
  modelThreads: number;
  detector: NonNullable<AnalyzerOptions['detector']>;
  detectorRuntime: NonNullable<AnalyzerOptions['detectorRuntime']>;
  tile: boolean;
  batchSize: number;
  batchMs: number;
  detectInterval: number;
  reuseChange: number;
}

/** Options are checked once, here: a typo fails at creation, not on the first input. */
function checkOptions(options: AnalyzerOptions): CheckedOptions {
  const known = ANALYZER_OPTION_KEYS as readonly string[];
  for (const k of Object.keys(options)) if (!known.includes(k)) throw new ConfigError(k, `unknown analyzer option ${JSON.stringify(k)} (known: ${known.join(', ')})`);
  const device = options.device ?? 'auto';
  if (!DEVICES.includes(device)) throw new ConfigError('device', `device must be one of ${DEVICES.join(', ')}, got ${JSON.stringify(device)}`);
  const precision = options.precision ?? 'auto';
  if (!PRECISIONS.includes(precision)) throw new ConfigError('precision', `precision must be one of ${PRECISIONS.join(', ')}, got ${JSON.stringify(precision)}`);
  const detector = options.detector ?? 'full';
  if (!DETECTORS.includes(detector)) throw new ConfigError('detector', `detector must be 'short' or 'full', got ${JSON.stringify(detector)}`);
  const detectorRuntime = options.detectorRuntime ?? 'onnx';
  if (!DETECTOR_RUNTIMES.includes(detectorRuntime)) throw new ConfigError('detectorRuntime', `detectorRuntime must be one of ${DETECTOR_RUNTIMES.join(', ')}, got ${JSON.stringify(detectorRuntime)}`);
  const int = (key: string, v: number | undefined, dflt: number, min: number): number => {
    const n = v ?? dflt;
    if (!Number.isInteger(n) || n < min) throw new ConfigError(key, `${key} must be an integer >= ${min}, got ${v}`);
    return n;
  };
  const reuseChange = options.reuseChange ?? REUSE_MAX_CHANGE;
  if (!(Number.isFinite(reuseChange) && reuseChange >= 0 && reuseChange <= 255)) throw new ConfigError('reuseChange', `reuseChange must be a number from 0 to 255, got ${options.reuseChange}`);
  const batchMs = options.batchMs ?? 30;
  if (!(Number.isFinite(batchMs) && batchMs >= 0)) throw new ConfigError('batchMs', `batchMs must be a number >= 0, got ${options.batchMs}`);
  return {
    models: options.models ?? defaultModelsDir(),
    device,
    precision,
    modelThreads: checkModelThreads(options.modelThreads ?? CPU_MODEL_THREADS),
    detector,
    detectorRuntime,
    tile: options.tile === true,
    batchSize: int('batchSize', options.batchSize, 16, 1),
    batchMs,
    detectInterval: int('detectInterval', options.detectInterval, FILE_DETECT_INTERVAL, 1),
    reuseChange,
  };
}

