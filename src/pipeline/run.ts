// The whole pipeline: many sources → (per stream) detect → track → crop → (shared) batch → infer →
// (per stream, in order) smooth → timeline → every sink.
//
// One model stage serves every stream, so crops of all cameras share batches. Each stream keeps its own order
// end to end (the join puts readings back on their frames), so the events of one track are in time order.
// Flow control is by frame release: a frame is released once its events are accepted by every sink (or when it
// is dropped), and file sources pause until then, so a slow model or a slow sink slows decoding instead of
// filling memory.
//
// `createPipeline` is the long-lived form (live cameras come and go); `runPipeline` runs a fixed set to the end.
import {
  EMPTY,
  type Observable,
  ReplaySubject,
  Subject,
  type Subscription,
  catchError,
  concat,
  concatMap,
  defer,
  from,
  map,
  merge,
  mergeMap,
  of,
  takeUntil,
  tap,
} from 'rxjs';
import { ConfigError } from '../errors.js';
import type { AnalysisProgress, ExpressionReading, FaceCrop, FrameSource, Sink, StreamEndEvent, TimelineEvent, TrackEndEvent } from '../types.js';
import { type BatchStats } from './batch.js';
import { crop } from './crop.js';
import { detectAndTrack } from './detect-track.js';
import { infer } from './infer.js';
import { FrameJoin } from './join.js';
import { isBreak, passBreaks, trackAcrossBreaks } from './breaks.js';
import type { ReadItem, StreamEndReason, StreamItem, TrackBreak } from './messages.js';
import { type PipelineOptions, type PipelineOptionsInput, resolvePipelineOptions } from './options.js';
import { ReadReuse } from './reuse.js';
import type { DetectorPort, ExpressionModelPort } from './ports.js';
import { smooth } from './smooth.js';
import { type TimelineOutput, timeline } from './timeline.js';
import type { EventIds } from './events.js';

/** The public progress record (types.ts), plus the count over every stream of the run. */
export interface ProgressUpdate extends AnalysisProgress {
  /** frames finished, all streams. */
  totalFrames: number;
}

export interface StreamResult {
  streamId: string;
  reason: StreamEndReason;
  frames: number;
  tracks: number;
  /** the cause when reason is 'error' (a CafeStreamError for known failures). */
  error?: unknown;
}

/** What a finished run did: its streams and tracks, the pipeline's counters, wall time since `started` (performance.now()). */
export function summarize(pipeline: Pick<Pipeline, 'stats'>, streams: StreamResult[], tracks: TrackEndEvent[], started: number): RunSummary {
  const { events, frames, crops, reused, batches } = pipeline.stats();
  return { streams, tracks, events, frames, crops, reused, batches, wallSeconds: (performance.now() - started) / 1000 };
}

export interface RunSummary {
  streams: StreamResult[];
  /** every track.end event, in emission order. */
  tracks: TrackEndEvent[];
  events: number;
  frames: number;
  /** face crops, read by the model or not. */
  crops: number;
  /** crops whose track's last probabilities were carried forward instead of a model read (options.reuse). */
  reused: number;
  batches: number;
  wallSeconds: number;
}

export interface PipelineParams {
  detector: DetectorPort;
  model: ExpressionModelPort;
  sinks: Sink[];
  options?: PipelineOptionsInput;
  onProgress?: (update: ProgressUpdate) => void;
  /** every event, after the sinks accepted it (for summaries and live views). */
  onEvent?: (event: TimelineEvent) => void;
  /** model-stage queue and in-flight figures, for metrics. */
  onBatchStats?: (stats: BatchStats) => void;
  /** every face crop as it goes to the model (report thumbnails); the hook must copy what it keeps. */
  onCrop?: (crop: FaceCrop) => void;
  /** event ids per stream (events.ts: deterministicIds for jobs that may be redone); default random UUIDs. */
  eventIds?: EventIds;
}

export interface RunPipelineParams extends PipelineParams {
  sources: FrameSource[];
  /** aborting stops every source; their streams end with reason 'stopped' and the sinks are flushed. */
  signal?: AbortSignal;
}

export interface Pipeline {
  /** Starts a stream; resolves once its stream.end is written. Never rejects for the stream's own failures. */
  add(source: FrameSource): Promise<StreamResult>;
  /** Stops one stream (its stream.end says 'stopped'). */
  stop(streamId: string): void;
  /** Ends every open track of a running stream now, with this reason; the stream goes on with new tracks. */
  interrupt(streamId: string, reason: TrackBreak['reason']): void;
  /** Stops every stream, waits for their stream.end, flushes the sinks. */
  close(): Promise<void>;
  /** Resolves when the pipeline fails as a whole (a sink failed); never resolves otherwise. */
  readonly failed: Promise<unknown>;
  /** the error that failed the pipeline as a whole, if any. */
  failure(): unknown;
  stats(): { frames: number; crops: number; reused: number; batches: number; events: number; pendingItems: number; activeStreams: string[] };
}

interface ActiveStream {
  source: FrameSource;
  stop$: Subject<void>;
  breaks$: Subject<TrackBreak>;
  subscription?: Subscription;
  done: (result: StreamResult) => void;
  frames: number;
  tracks: number;
  /** the original error object behind a stream.end with reason 'error' (the event only has its line). */
  errorCause?: unknown;
}

export function createPipeline(params: PipelineParams): Pipeline {
  const options: PipelineOptions = resolvePipelineOptions(params.options);
  const { detector, model, sinks } = params;
  const join = new FrameJoin();
  const reuse = new ReadReuse(options.reuse);
  const crops$ = new Subject<FaceCrop>();
  const ready$ = new Subject<ReadItem>();
  const active = new Map<string, ActiveStream>();
  const counters = { frames: 0, crops: 0, batches: 0, events: 0 };
  let modelError: unknown;
  let failure: { err: unknown } | undefined;
  let closing = false;
  let resolveFailed!: (err: unknown) => void;
  const failed = new Promise<unknown>((res) => (resolveFailed = res));
  let resolveIdle: (() => void) | undefined;

  const flushJoin = (): void => {
    for (const item of join.drain()) ready$.next(item);
  };

  // ---- the shared model stage ----
  const modelSub = crops$
    .pipe(infer(model, { ...options.batch, ...(params.onBatchStats ? { onStats: params.onBatchStats } : {}) }))
    .subscribe({
      next: (readings: ExpressionReading[]) => {
        counters.batches++;
        for (const r of readings) {
          join.attach(r);
          for (const c of reuse.read(r)) join.attach(c);
        }
        flushJoin();
      },
      error: (err: unknown) => failModel(err),
    });

  /** The model stage is gone: every stream ends with its error; frames waiting on it are dropped. */
  function failModel(err: unknown): void {
    modelError = err;
    flushJoin();
    for (const [streamId, s] of active) {
      s.subscription?.unsubscribe();
      s.errorCause = err;
      for (const frame of join.abort(streamId)) s.source.release(frame);
      ready$.next({ kind: 'end', streamId, reason: 'error', error: err });
    }
  }

  // ---- per stream, in order: smooth → timeline → sinks → release ----
  const writeSub = ready$
    .pipe(
      smooth(options.smoothing),
      timeline(options.timeline, params.eventIds),
      concatMap((out) => from(deliver(out))),
    )
    .subscribe({ error: (err: unknown) => fail(err) });

  async function deliver(out: TimelineOutput): Promise<void> {
    for (const event of out.events) {
      for (const sink of sinks) await sink.write(event);
      counters.events++;
      params.onEvent?.(event);
    }
    const s = active.get(out.streamId);
    if (out.frame !== undefined) {
      counters.frames++;
      if (s !== undefined) {
        s.frames++;
        s.tracks += out.events.filter((e) => e.type === 'track.start').length;
        s.source.release(out.frame);
        params.onProgress?.({
          streamId: out.streamId,
          frameId: out.frame.frameId,
          pts: out.frame.pts,
          faces: out.events.filter((e) => e.type === 'face.observation').length,
          frames: s.frames,
          tracks: s.tracks,
          totalFrames: counters.frames,
        });
      }
    }
    const end = out.events.find((e): e is StreamEndEvent => e.type === 'stream.end');
    if (end !== undefined && s !== undefined) {
      active.delete(out.streamId);
      reuse.forget(out.streamId);
      s.done({
        streamId: out.streamId,
        reason: end.reason,
        frames: end.frames,
        tracks: end.tracks,
        ...(end.reason === 'error' ? { error: s.errorCause ?? end.error } : {}),
      });
      if (active.size === 0) resolveIdle?.();
    }
  }

  /** A sink failed: nothing more can be delivered. Stop everything and report. */
  function fail(err: unknown): void {
    failure ??= { err };
    for (const s of active.values()) {
      s.subscription?.unsubscribe();
      s.done({ streamId: s.source.streamId, reason: 'error', frames: s.frames, tracks: s.tracks, error: err });
    }
    active.clear();
    resolveIdle?.();
    resolveFailed(err);
  }

  function streamItems(source: FrameSource, stop$: Observable<void>, breaks$: Observable<TrackBreak>, onError: (err: unknown) => void): Observable<StreamItem> {
    const streamId = source.streamId;
    return defer(() => {
      // Source errors are held back until the frames already decoded have gone through, so a truncated file
      // still yields the timeline of everything before the damage.
      let sourceError: unknown;
      let stopped = false;
      const frames$ = source.frames().pipe(
        takeUntil(stop$.pipe(tap(() => (stopped = true)))),
        catchError((err: unknown) => {
          sourceError = err;
          return EMPTY;
        }),
      );
      // breaks join the frames in arrival order and end with them (a replay: frames of a source closed meanwhile
      // complete while merge subscribes, before the breaks' takeUntil is listening)
      const framesDone$ = new ReplaySubject<void>(1);
      const input$ = merge(frames$.pipe(tap({ complete: () => framesDone$.next() })), breaks$.pipe(takeUntil(framesDone$)));
      const end = (): StreamItem => {
        if (sourceError !== undefined) onError(sourceError);
        return sourceError !== undefined
          ? { kind: 'end', streamId, reason: 'error', error: sourceError }
          : { kind: 'end', streamId, reason: stopped ? 'stopped' : 'eof' };
      };
      return from(source.info()).pipe(
        mergeMap((info) =>
          concat(
            of<StreamItem>({ kind: 'start', streamId, info }),
            input$.pipe(
              trackAcrossBreaks(() => (frames) => frames.pipe(detectAndTrack(detector, { detection: options.detection, tracker: options.tracker }))),
              passBreaks(crop(model.cropSize, options.crop)),
              map((x): StreamItem => (isBreak(x) ? x : { kind: 'frame', streamId, frame: x })),
            ),
            defer(() => of(end())),
          ),
        ),
        catchError((err: unknown) => {
          onError(err);
          return of<StreamItem>({ kind: 'end', streamId, reason: 'error', error: err });
        }),
      );
    });
  }

  function add(source: FrameSource): Promise<StreamResult> {
    const streamId = source.streamId;
    if (closing) return Promise.reject(new ConfigError('streams', `pipeline is closing; cannot add stream ${streamId}`));
    if (active.has(streamId)) return Promise.reject(new ConfigError('streams', `stream id ${streamId} is already running`));
    return new Promise<StreamResult>((resolve) => {
      // a replay: a stop asked while the source is still connecting must still end the stream as 'stopped', not 'eof'
      const s: ActiveStream = { source, stop$: new ReplaySubject<void>(1), breaks$: new Subject<TrackBreak>(), done: resolve, frames: 0, tracks: 0 };
      active.set(streamId, s);
      if (modelError !== undefined) {
        s.errorCause = modelError;
        ready$.next({ kind: 'end', streamId, reason: 'error', error: modelError });
        return;
      }
      s.subscription = streamItems(source, s.stop$, s.breaks$, (err) => (s.errorCause = err)).subscribe({
        next: (item) => {
          join.add(item);
          if (item.kind === 'frame') {
            counters.crops += item.frame.crops.length;
            for (const c of item.frame.crops) {
              params.onCrop?.(c);
              if (reuse.decide(c, (r) => join.attach(r)) === 'read') crops$.next(c);
            }
          }
          flushJoin();
        },
      });
    });
  }

  function stop(streamId: string): void {
    active.get(streamId)?.stop$.next();
  }

  function interrupt(streamId: string, reason: TrackBreak['reason']): void {
    active.get(streamId)?.breaks$.next({ kind: 'break', streamId, reason });
  }

  async function close(): Promise<void> {
    closing = true;
    if (active.size > 0) {
      const idle = new Promise<void>((res) => (resolveIdle = res));
      for (const s of active.values()) s.stop$.next();
      await idle;
    }
    crops$.complete();
    modelSub.unsubscribe();
    writeSub.unsubscribe();
    for (const sink of sinks) await sink.flush();
  }

  return {
    add,
    stop,
    interrupt,
    close,
    failed,
    failure: () => failure?.err,
    stats: () => ({ ...counters, reused: reuse.stats().reused, pendingItems: join.size(), activeStreams: [...active.keys()] }),
  };
}

/** Runs every source to its end; resolves with what happened to each. Rejects only if a sink fails. */
export async function runPipeline(params: RunPipelineParams): Promise<RunSummary> {
  const started = performance.now();
  const tracks: TrackEndEvent[] = [];
  const onEvent = (e: TimelineEvent): void => {
    if (e.type === 'track.end') tracks.push(e);
    params.onEvent?.(e);
  };
  const pipeline = createPipeline({ ...params, onEvent });
  const onAbort = (): void => {
    for (const s of params.sources) pipeline.stop(s.streamId);
  };
  if (params.signal?.aborted) onAbort();
  params.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const streams = await Promise.all(params.sources.map((s) => pipeline.add(s)));
    const sinkError = pipeline.failure();
    if (sinkError !== undefined) {
      await pipeline.close().catch(() => undefined); // the sink already failed; its first error is the one to report
      throw sinkError;
    }
    await pipeline.close();
    return summarize(pipeline, streams, tracks, started);
  } finally {
    params.signal?.removeEventListener('abort', onAbort);
  }
}

/** The first stream error, for a process exit code. */
export function firstStreamError(summary: RunSummary): unknown {
  return summary.streams.find((s) => s.reason === 'error')?.error;
}
