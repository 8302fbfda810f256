// Messages between the pipeline's own stages (after tracking). Types shared with ingest, models and sinks
// live in src/types.ts; these never leave src/pipeline.
import type { EndedTrack, Expression, FaceCrop, Frame, StreamInfo, TrackedFace, TrackedFrame } from '../types.js';

export type StreamEndReason = 'eof' | 'error' | 'stopped';

/**
 * Every open track of a stream ends here, without a frame: the camera went offline, or the stream is handed to
 * another worker. It travels in the stream's order (breaks.ts), so frames before it belong to the old tracks
 * and frames after it to new ones.
 */
export interface TrackBreak {
  kind: 'break';
  streamId: string;
  reason: Extract<EndedTrack['reason'], 'stream-offline' | 'reassigned'>;
}

/** A tracked frame with the crops cut from it, in the same order as `faces`. */
export interface CroppedFrame extends TrackedFrame {
  crops: FaceCrop[];
}

/** What one stream contributes, in order: a start, its frames, one end. */
export type StreamItem =
  | { kind: 'start'; streamId: string; info: StreamInfo }
  | { kind: 'frame'; streamId: string; frame: CroppedFrame }
  | TrackBreak
  | { kind: 'end'; streamId: string; reason: StreamEndReason; error?: unknown };

/** A frame whose crops all came back from the model stage: `readings` keyed by trackId. */
export interface ReadFrame {
  frame: Frame;
  faces: TrackedFace[];
  ended: EndedTrack[];
  readings: Map<string, Float32Array>;
}

export type ReadItem =
  | { kind: 'start'; streamId: string; info: StreamInfo }
  | { kind: 'frame'; streamId: string; frame: ReadFrame }
  | TrackBreak
  | { kind: 'end'; streamId: string; reason: StreamEndReason; error?: unknown };

export interface SmoothedFace extends TrackedFace {
  /** this frame's model output, EXPRESSIONS order. */
  probabilities: Float32Array;
  /** the track's smoothed probabilities after this frame. */
  smoothed: Float32Array;
  label: Expression;
  confidence: number;
}

export interface SmoothedFrame {
  frame: Frame;
  faces: SmoothedFace[];
  ended: EndedTrack[];
}

export type SmoothedItem =
  | { kind: 'start'; streamId: string; info: StreamInfo }
  | { kind: 'frame'; streamId: string; frame: SmoothedFrame }
  | TrackBreak
  | { kind: 'end'; streamId: string; reason: StreamEndReason; error?: unknown };
