// Types that cross a stage boundary (ingest → pipeline → sinks) live here and only here.
// Every message carries streamId, frameId and pts so any stage can be traced back to a frame.

/** The canonical class order: RAF-DB's (CAFE's separation group g is class g). Never reorder. */
export const EXPRESSIONS = ['surprise', 'fear', 'disgust', 'happiness', 'sadness', 'anger', 'neutral'] as const;
export type Expression = (typeof EXPRESSIONS)[number];
export type ExpressionProbabilities = Record<Expression, number>;

/** Version of the timeline event schema (schema/events.v1.json). Bump the major on breaking changes. */
export const EVENT_SCHEMA_VERSION = '1.2.0';
export const EVENT_SCHEMA_ID = 'https://cafe-stream.dev/schema/events.v1.json';

/** Where a stream's timestamps come from: media time for files, wall-clock for live sources. */
export type ClockKind = 'media' | 'wall';

export interface StreamInfo {
  streamId: string;
  /** file path or URL as given by the user (credentials stripped for URLs). */
  source: string;
  kind: 'file' | 'rtsp';
  clock: ClockKind;
  width: number;
  height: number;
  /** frames per second of the source, when known. */
  fps?: number;
  /** duration in seconds, files only. */
  duration?: number;
  /** a worker-group camera: the spell of another worker this stream takes over (schema 1.2.0). */
  replaces?: SpellReplaces;
}

/**
 * The worker whose spell on a camera a new stream takes over. worker-lost: that worker left the group without
 * handing the camera back (killed, removed), so its stream has no stream.end and its open tracks no track.end;
 * handover: it handed the camera back (its spell ended with track.end `reassigned` and stream.end).
 */
export interface SpellReplaces {
  worker: string;
  reason: 'worker-lost' | 'handover';
}

/** One decoded frame, packed RGB24, full resolution. */
export interface Frame {
  streamId: string;
  /** 0-based index among the frames this stream delivered (after sampling). */
  frameId: number;
  /** seconds: media time for files, Unix epoch seconds for live sources. */
  pts: number;
  width: number;
  height: number;
  data: Buffer;
}

/** Axis-aligned box in full-frame pixels. */
export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface Detection {
  box: Box;
  score: number;
  /** MediaPipe's 6 keypoints (eyes, nose, mouth, ears), full-frame pixels, when the detector gives them. */
  keypoints?: { x: number; y: number; name?: string }[];
}

/**
 * What the tracker tells the detector about a frame (DetectorPort.detect). A detector that tiles the frame for
 * small faces looks again, at native resolution, where an expected face was not found, and scans the whole
 * frame in tiles only when `scan` says so; a detector without tiles ignores them. Without hints a tiling
 * detector scans every call (a photo has no history).
 */
export interface DetectHints {
  /** where the stream's faces should be in this frame (their tracks' predicted boxes), full-frame pixels. */
  expected: readonly Box[];
  /** time to look at the whole frame in full again (in tiles, or alone rather than in a mosaic), for faces that appeared since. */
  scan: boolean;
}

/** Frames a face detector served and the model calls it made (benchmarks and /metrics read them). */
export interface DetectorCounts {
  frames: number;
  /** frames served by a mosaic call of several streams' frames. */
  mosaicFrames: number;
  /** mosaic frames whose expected face the mosaic missed: detected again on their own. */
  mosaicRetries: number;
  /** calls into the model, of any kind (whole frame, tile, look-again, mosaic). */
  calls: number;
}

export interface DetectedFrame {
  frame: Frame;
  detections: Detection[];
}

export interface TrackedFace {
  /** stable within a stream for the life of the track, e.g. "t3". */
  trackId: string;
  box: Box;
  score: number;
  /** true on the first frame of the track. */
  isNew: boolean;
}

export interface EndedTrack {
  trackId: string;
  /** pts of the last frame the face was seen on. */
  lastSeen: number;
  /**
   * lost: unseen longer than the tracker allows; stream.end: the stream ended; stream-offline: the camera went
   * offline (a face cannot be followed across an outage); reassigned: the camera moved to another worker;
   * worker-lost: written by a consumer (`subscribe`), not by a worker: the worker running the camera was lost
   * and the next worker's stream.start says so (StreamInfo.replaces).
   */
  reason: 'lost' | 'stream.end' | 'stream-offline' | 'reassigned' | 'worker-lost';
}

export interface TrackedFrame {
  frame: Frame;
  faces: TrackedFace[];
  /** tracks that ended on this frame (lost for too long). */
  ended: EndedTrack[];
}

/** A square face crop ready for the models: RGB24, size × size. */
export interface FaceCrop {
  streamId: string;
  frameId: number;
  pts: number;
  trackId: string;
  box: Box;
  size: number;
  rgb: Buffer;
}

/** What the model stage says about one crop. */
export interface ExpressionReading {
  streamId: string;
  frameId: number;
  pts: number;
  trackId: string;
  box: Box;
  /** raw probabilities in EXPRESSIONS order. */
  probabilities: Float32Array;
}

// ---- Timeline events (the public, versioned schema: schema/events.v1.json) ----

export interface EventBase {
  /** unique per event; consumers de-duplicate by it. */
  id: string;
  schemaVersion: string;
  streamId: string;
  /** seconds: media time for files, Unix epoch seconds for live sources (see stream.start's clock). */
  time: number;
  /** wall-clock ISO-8601 instant the event was emitted. */
  emittedAt: string;
}

export interface StreamStartEvent extends EventBase {
  type: 'stream.start';
  stream: StreamInfo;
}

export interface StreamOnlineEvent extends EventBase {
  type: 'stream.online';
  /** reconnect attempt that succeeded; 0 for the first connection. */
  attempt: number;
}

export interface StreamOfflineEvent extends EventBase {
  type: 'stream.offline';
  reason: string;
  /** seconds until the next reconnect attempt. */
  retryIn: number;
}

export interface TrackStartEvent extends EventBase {
  type: 'track.start';
  trackId: string;
  frameId: number;
  box: Box;
}

export interface FaceObservationEvent extends EventBase {
  type: 'face.observation';
  trackId: string;
  frameId: number;
  box: Box;
  /** this frame's model output. */
  probabilities: ExpressionProbabilities;
  /** the track's smoothed label after this frame. */
  label: Expression;
  /** smoothed probability of `label`. */
  confidence: number;
}

export interface FaceSegmentEvent extends EventBase {
  type: 'face.segment';
  trackId: string;
  label: Expression;
  start: number;
  end: number;
  observations: number;
  meanProbabilities: ExpressionProbabilities;
}

export interface TrackSummary {
  duration: number;
  observations: number;
  dominant: Expression;
  segments: number;
  meanProbabilities: ExpressionProbabilities;
  /** seconds spent in each smoothed label. */
  labelDurations: ExpressionProbabilities;
}

export interface TrackEndEvent extends EventBase {
  type: 'track.end';
  trackId: string;
  start: number;
  end: number;
  reason: EndedTrack['reason'];
  summary: TrackSummary;
}

export interface StreamEndEvent extends EventBase {
  type: 'stream.end';
  reason: 'eof' | 'error' | 'stopped';
  frames: number;
  tracks: number;
  /** one line naming the cause when reason is 'error'. */
  error?: string;
}

export type TimelineEvent =
  | StreamStartEvent
  | StreamOnlineEvent
  | StreamOfflineEvent
  | TrackStartEvent
  | FaceObservationEvent
  | FaceSegmentEvent
  | TrackEndEvent
  | StreamEndEvent;

export type TimelineEventType = TimelineEvent['type'];

/**
 * A worker finished a file job (`cafe-stream submit`); written after every event of the file was delivered.
 * Not a TimelineEvent: only the worker group's events topic carries it (schema 1.1.0).
 */
export interface JobDoneEvent extends EventBase {
  type: 'job.done';
  jobId: string;
  file: string;
  status: 'ok' | 'error';
  frames: number;
  tracks: number;
  /** events of the job before this one. */
  events: number;
  worker: string;
  error?: string;
}

// ---- Sinks ----

export interface SinkStats {
  sent: number;
  buffered: number;
  dropped: number;
}

/**
 * Where timeline events go. `write` resolves when the sink has accepted the event (it may still be
 * buffered); a sink with a bounded buffer applies its stated drop policy rather than blocking forever.
 */
export interface Sink {
  readonly name: string;
  write(event: TimelineEvent): Promise<void>;
  /** deliver everything accepted so far (bounded by the sink's own timeout). */
  flush(): Promise<void>;
  close(): Promise<void>;
  stats(): SinkStats;
}

// ---- Sources ----

/**
 * A source of frames for one stream. File sources are lossless: they hold at most a bounded number of
 * frames that the pipeline has not yet released and pause ffmpeg until it does. Live sources keep the
 * newest frame when the pipeline falls behind and count the frames they skip.
 */
export interface FrameSource {
  readonly streamId: string;
  /** resolves once the source is open (probe done / first connection made). */
  info(): Promise<StreamInfo>;
  /** cold: subscribing starts decoding; unsubscribing kills ffmpeg. Errors are IngestError. */
  frames(): import('rxjs').Observable<Frame>;
  /** the pipeline is done with this frame (it reached the timeline stage, or was dropped). */
  release(frame: Frame): void;
  /** frames skipped because the pipeline was behind (always 0 for files). */
  skipped(): number;
}

// ---- The public library API (src/index.ts) ----

/** Where the expression models run: 'auto' tries a GPU and falls back to the CPU. */
export type Device = 'auto' | 'cpu' | 'cuda' | 'webgpu';

/** Options of createAnalyzer(): which models, where they run, how crops are batched. Checked once, at creation. */
export interface AnalyzerOptions {
  /** folder with the encoder and head .onnx files and their manifests; default the models/ shipped with the package. */
  models?: string;
  /** default 'auto'. */
  device?: Device;
  /** which encoder copy runs: default 'auto' (the int8 copy on the CPU, the float encoder on a GPU); 'float' needs
   * the float encoder, which the package does not ship (built by the trainer's `import-encoder`). */
  precision?: 'auto' | 'float' | 'int8';
  /** on the CPU, the model stage's threads, each with its own session: default min(2, cores); 0 runs the model
   * on the calling thread (one session, ~150 MB less, but each batch holds up that thread's other work). */
  modelThreads?: number;
  /** face detector: 'full' range (faces up to ~5 m, default) or 'short' (~2 m, faster). */
  detector?: 'short' | 'full';
  /** the detector's runtime: 'onnx' (onnxruntime, default, ~5× faster per call) or 'tfjs' (@tensorflow-models/face-detection on tfjs-wasm); the same weights. */
  detectorRuntime?: 'onnx' | 'tfjs';
  /** small faces in wide frames: also detect at native resolution, scanning the frame in tiles every 2 s and looking again around tracked faces in between (crowds, e.g. a 16-face grid). */
  tile?: boolean;
  /** face crops per model call, across every input in flight; default 16. */
  batchSize?: number;
  /** a batch leaves after this many ms even if not full; default 30. */
  batchMs?: number;
  /** files: run the detector on every n-th frame, the tracker carries the boxes in between; default 3. */
  detectInterval?: number;
  /** a face whose crop changed by at most this mean grey level since its track's last model read keeps that
   * reading (read at least once a second); default 2, 0 reads every crop. */
  reuseChange?: number;
  /** one line per notable step (models loaded, provider chosen, skipped folder entries). */
  log?: (line: string) => void;
}

/** A file to analyse, optionally with the stream id its events carry (default: its base name). */
export type AnalyzeInput = string | { path: string; streamId?: string };

/** Per-call options of analyze(); they never change the analyzer. */
export interface AnalyzeOptions {
  /** stream id of a single input (default: the file's base name; `name#2` when already in use). */
  streamId?: string;
  /** analyse at most n frames per second of video; default every frame. */
  sampleFps?: number;
  /** files analysed at once when given several inputs or a folder; default 1. */
  concurrency?: number;
  /** stops gracefully: open streams end with stream.end reason 'stopped', files not started are skipped, then complete. */
  signal?: AbortSignal;
  /** after every analysed frame. */
  onProgress?: (progress: AnalysisProgress) => void;
  /** every face crop as it goes to the model (thumbnails); the callback must copy what it keeps. */
  onCrop?: (crop: FaceCrop) => void;
}

/** Per-call options of watch(). */
export interface WatchOptions {
  /** default: the URL's host and path. */
  streamId?: string;
  transport?: 'tcp' | 'udp';
  /** thin the camera to at most n frames per second. */
  sampleFps?: number;
  /** scale down (aspect kept) when the camera is wider than this. */
  maxWidth?: number;
  /** no frame for this long on an open connection counts as a stall (reconnect); default 5. */
  stallSeconds?: number;
  /** stops gracefully: the stream ends with stream.end reason 'stopped', then complete. */
  signal?: AbortSignal;
  onProgress?: (progress: AnalysisProgress) => void;
}

/** One analysed frame. */
export interface AnalysisProgress {
  streamId: string;
  frameId: number;
  pts: number;
  /** faces on this frame. */
  faces: number;
  /** frames this stream has finished. */
  frames: number;
  /** tracks this stream has started. */
  tracks: number;
}

/** What an analyzer has done so far. */
export interface AnalyzerStats {
  /** times the detector and models were loaded (1 after any number of inputs, unless a load failed). */
  loads: number;
  /** streams running now. */
  activeStreams: string[];
  /** streams started since creation. */
  streams: number;
  frames: number;
  /** face crops, read by the model or carried forward. */
  crops: number;
  /** crops of an unchanged face whose track's last probabilities were carried forward instead of a model read. */
  reused: number;
  batches: number;
  events: number;
}

/** What load() resolves with. */
export interface LoadedModels {
  detector: string;
  /** the execution provider the expression models run on: 'cpu' | 'cuda' | 'webgpu'. */
  provider: string;
}
