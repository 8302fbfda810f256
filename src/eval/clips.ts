// Scores labelled video clips through the product's own video path: each clip runs through exactly what
// `analyze` runs (file source with --sample-fps, detector with the file detection interval, tracker, crop,
// batched model stage, smoothing, timeline), and the clip's label is read off its timeline the way a user
// reads it: the main track's `track.end` summary `dominant`. The main track is the one seen longest (ties:
// more observations). Also reported: the argmax of that track's mean probabilities, and, with a peer, the peer's
// reading of the very crops our model read on that track (same sampled frames, same faces, same framing).
import { errorLine } from '../errors.js';
import { createFileSource, framesPendingFor } from '../ingest/file-source.js';
import type { FaceDetector } from '../model/face-detector.js';
import { FILE_DETECT_INTERVAL, type PipelineOptionsInput } from '../pipeline/options.js';
import type { ExpressionModelPort } from '../pipeline/ports.js';
import { runPipeline } from '../pipeline/run.js';
import { EXPRESSIONS, type Expression, type FaceCrop, type Sink, type TimelineEvent, type TrackEndEvent } from '../types.js';
import type { Dataset, Sample } from './datasets.js';
import type { CropClassifier } from './evaluate-set.js';
import { type DomainMetrics, type Outcome, argmax, scoreOutcomes } from './metrics.js';

/** How one clip was read. */
export interface ClipResult {
  source: string;
  label: Expression;
  group: string;
  /** the main track's `dominant`; undefined when no face was tracked or the clip failed. */
  dominant?: Expression;
  /** argmax of the main track's mean probabilities. */
  meanArgmax?: Expression;
  /** the main track's summary: seconds per label (the timeline's segments). */
  labelDurations?: Record<Expression, number>;
  meanProbabilities?: Record<Expression, number>;
  tracks: number;
  mainTrack?: { trackId: string; duration: number; observations: number };
  /** the decode or pipeline error, one line, when the clip could not be read to its end. */
  error?: string;
  /** frames analysed. */
  frames: number;
}

/** A peer's reading of the main track's crops: most frequent per-crop label (face-api.js's usual protocol) and argmax of the mean. */
export interface PeerClipResult {
  source: string;
  label: Expression;
  frequent?: Expression;
  meanArgmax?: Expression;
}

export interface ClipSetResult {
  clips: ClipResult[];
  /** clip label = main track's `dominant`. */
  metrics: DomainMetrics;
  /** clip label = argmax of the main track's mean probabilities. */
  meanMetrics: DomainMetrics;
  /** non-neutral clips read as neutral (by `dominant`). */
  nonNeutralAsNeutral: number;
  nonNeutral: number;
  /** clips where no face was tracked (decoded fine). */
  noFace: number;
  /** clips that could not be decoded (missing, not a video, truncated before any frame), with the cause. */
  unreadable: { source: string; reason: string }[];
  peer?: { name: string; clips: PeerClipResult[]; metrics: DomainMetrics; meanMetrics: DomainMetrics; nonNeutralAsNeutral: number };
}

export interface EvaluateClipsParams {
  dataset: Dataset;
  detector: FaceDetector;
  model: ExpressionModelPort;
  /** analyze's --sample-fps; undefined = every frame. */
  sampleFps?: number;
  /** pipeline options as analyze resolves them (defaults + the file detection interval). */
  options?: PipelineOptionsInput;
  /** crops per model call (analyze's --batch-size), also sizes the source's frame window as analyze does. */
  maxBatch?: number;
  /** also read the main track's crops with this classifier. */
  peer?: CropClassifier;
  onClip?: (result: ClipResult, index: number, total: number) => void;
}

export async function evaluateClips(p: EvaluateClipsParams): Promise<ClipSetResult> {
  const options: PipelineOptionsInput = {
    ...p.options,
    detection: { interval: FILE_DETECT_INTERVAL, ...p.options?.detection },
    batch: { maxBatch: p.maxBatch ?? 16, ...p.options?.batch },
  };
  const clips: ClipResult[] = [];
  const peerClips: PeerClipResult[] = [];
  let index = 0;
  for (const sample of p.dataset.samples) {
    const { result, crops } = await runClip(sample, p, options);
    clips.push(result);
    if (p.peer !== undefined) peerClips.push(await readWithPeer(p.peer, sample, result, crops));
    p.onClip?.(result, index++, p.dataset.samples.length);
  }
  const ours = outcomesOf(clips, (c) => c.dominant);
  const result: ClipSetResult = {
    clips,
    metrics: scoreOutcomes(ours),
    meanMetrics: scoreOutcomes(outcomesOf(clips, (c) => c.meanArgmax)),
    nonNeutralAsNeutral: neutralSinks(ours),
    nonNeutral: clips.filter((c) => c.label !== 'neutral').length,
    noFace: clips.filter((c) => c.error === undefined && c.tracks === 0).length,
    unreadable: clips.filter((c) => c.error !== undefined && c.frames === 0).map((c) => ({ source: c.source, reason: c.error! })),
  };
  if (p.peer !== undefined) {
    const theirs = outcomesOf(peerClips, (c) => c.frequent);
    result.peer = {
      name: p.peer.name,
      clips: peerClips,
      metrics: scoreOutcomes(theirs),
      meanMetrics: scoreOutcomes(outcomesOf(peerClips, (c) => c.meanArgmax)),
      nonNeutralAsNeutral: neutralSinks(theirs),
    };
  }
  return result;
}

/** One outcome per clip: its label and what `pick` read (none when no face was tracked or the clip failed). */
function outcomesOf<T extends { label: Expression }>(rows: readonly T[], pick: (row: T) => Expression | undefined): Outcome[] {
  return rows.map((r) => {
    const predicted = pick(r);
    return predicted === undefined ? { label: r.label } : { label: r.label, predicted };
  });
}

/** Non-neutral clips read as neutral. */
const neutralSinks = (outcomes: readonly Outcome[]): number => outcomes.filter((o) => o.label !== 'neutral' && o.predicted === 'neutral').length;

/** The track a viewer would call the clip's subject: seen longest, then most observed. */
export function mainTrack(tracks: readonly TrackEndEvent[]): TrackEndEvent | undefined {
  let best: TrackEndEvent | undefined;
  for (const t of tracks) {
    const d = t.summary.duration;
    const bd = best?.summary.duration ?? -1;
    if (best === undefined || d > bd || (d === bd && t.summary.observations > best.summary.observations)) best = t;
  }
  return best;
}

async function runClip(
  sample: Sample,
  p: EvaluateClipsParams,
  options: PipelineOptionsInput,
): Promise<{ result: ClipResult; crops: Map<string, FaceCrop[]> }> {
  const events: TimelineEvent[] = [];
  const sink: Sink = {
    name: 'evaluate-clips',
    write: async (e) => {
      events.push(e);
    },
    flush: async () => undefined,
    close: async () => undefined,
    stats: () => ({ sent: events.length, buffered: 0, dropped: 0 }),
  };
  const crops = new Map<string, FaceCrop[]>();
  // the hook must copy what it keeps: the pipeline reuses crop buffers
  const onCrop = p.peer === undefined ? undefined : (c: FaceCrop): void => {
    let list = crops.get(c.trackId);
    if (list === undefined) crops.set(c.trackId, (list = []));
    list.push({ ...c, rgb: Buffer.from(c.rgb) });
  };
  const source = createFileSource({ path: sample.source, reuseBuffers: true, maxPending: framesPendingFor(p.maxBatch ?? 16), ...(p.sampleFps === undefined ? {} : { sampleFps: p.sampleFps }) });
  const summary = await runPipeline({ sources: [source], detector: p.detector, model: p.model, sinks: [sink], options, ...(onCrop ? { onCrop } : {}) });
  const stream = summary.streams[0];
  const main = mainTrack(summary.tracks);
  const result: ClipResult = {
    source: sample.source,
    label: sample.label,
    group: sample.group,
    tracks: summary.tracks.length,
    frames: stream?.frames ?? 0,
    ...(stream?.reason === 'error' ? { error: errorLine(stream.error ?? 'unknown error') } : {}),
  };
  if (main !== undefined) {
    const mean = EXPRESSIONS.map((e) => main.summary.meanProbabilities[e]);
    result.dominant = main.summary.dominant;
    result.meanArgmax = EXPRESSIONS[argmax(mean)]!;
    result.labelDurations = main.summary.labelDurations;
    result.meanProbabilities = main.summary.meanProbabilities;
    result.mainTrack = { trackId: main.trackId, duration: main.summary.duration, observations: main.summary.observations };
  }
  // only the main track's crops are kept for the peer
  for (const k of [...crops.keys()]) if (k !== main?.trackId) crops.delete(k);
  return { result, crops };
}

async function readWithPeer(peer: CropClassifier, sample: Sample, ours: ClipResult, crops: Map<string, FaceCrop[]>): Promise<PeerClipResult> {
  const list = ours.mainTrack === undefined ? [] : (crops.get(ours.mainTrack.trackId) ?? []);
  const out: PeerClipResult = { source: sample.source, label: sample.label };
  if (list.length === 0) return out;
  const probs = await peer.classify(list.map((c) => ({ size: c.size, rgb: c.rgb })));
  const votes = new Array<number>(EXPRESSIONS.length).fill(0);
  const sum = new Array<number>(EXPRESSIONS.length).fill(0);
  for (const pr of probs) {
    votes[argmax(pr)]!++;
    for (let i = 0; i < sum.length; i++) sum[i]! += pr[i]!;
  }
  out.frequent = EXPRESSIONS[argmax(votes)]!;
  out.meanArgmax = EXPRESSIONS[argmax(sum)]!;
  return out;
}
