// The public API of the `cafe-stream` package: everything a program imports from 'cafe-stream'. Nothing else
// under src/ is public; test/exports.test.ts fails when a name here disappears (a breaking change: bump the major).
export { analyze, watch, type OneShotAnalyzeOptions, type OneShotWatchOptions } from './api/analyze.js';
export { createAnalyzer, type Analyzer } from './api/analyzer.js';
export { EventStream, toAsyncIterable, type AsyncIterableOptions } from './api/event-stream.js';
export { toJsonl, toKafka, toWebSocket, toSink, type KafkaSinkOptions, type WsSinkOptions } from './api/sinks.js';
export { fromKafka, fromWebSocket, type FromKafkaOptions, type FromWebSocketOptions } from './api/readers.js';
export { parseEvent, isEvent, type CafeStreamEvent } from './api/parse-event.js';
export {
  CafeStreamError,
  ConfigError,
  IngestError,
  InferenceError,
  InvalidEventError,
  ModelError,
  RetriesExceededError,
  SinkError,
  isCafeStreamError,
  type ErrorCode,
} from './errors.js';
export { EXIT, exitCodeFor } from './cli/exit-codes.js';
export {
  EVENT_SCHEMA_ID,
  EVENT_SCHEMA_VERSION,
  EXPRESSIONS,
  type AnalysisProgress,
  type AnalyzeInput,
  type AnalyzeOptions,
  type AnalyzerOptions,
  type AnalyzerStats,
  type Box,
  type ClockKind,
  type Device,
  type EndedTrack,
  type EventBase,
  type Expression,
  type ExpressionProbabilities,
  type FaceCrop,
  type FaceObservationEvent,
  type FaceSegmentEvent,
  type JobDoneEvent,
  type LoadedModels,
  type Sink,
  type SinkStats,
  type StreamEndEvent,
  type StreamInfo,
  type StreamOfflineEvent,
  type StreamOnlineEvent,
  type StreamStartEvent,
  type TimelineEvent,
  type TimelineEventType,
  type TrackEndEvent,
  type TrackStartEvent,
  type TrackSummary,
  type WatchOptions,
} from './types.js';
