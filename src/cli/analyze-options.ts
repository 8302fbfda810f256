// The flags of `cafe-stream analyze` and what both its paths (one file: analyze.ts; many: analyze-batch.ts) make
// of them, here so that neither path imports the other.
import type { Analyzer } from '../api/analyzer.js';
import { FILE_DETECT_INTERVAL } from '../pipeline/options.js';
import type { RunSummary } from '../pipeline/run.js';
import type { AnalyzerOptions, TrackEndEvent } from '../types.js';

export interface AnalyzeCliOptions {
  out?: string;
  sampleFps?: number;
  device: 'auto' | 'cpu' | 'cuda' | 'webgpu';
  precision?: 'auto' | 'float' | 'int8';
  modelThreads?: number;
  models: string;
  batchSize: number;
  batchMs: number;
  detector: 'short' | 'full';
  detectorRuntime?: 'onnx' | 'tfjs';
  tile?: boolean;
  /** run the detector on every N-th frame, the tracker carries the boxes in between. */
  detectInterval?: number;
  reuseChange?: number;
  quiet?: boolean;
  /** files analysed at once when given a folder or several files. */
  jobs?: number;
  [sinkOption: string]: unknown;
}

/** The analyzer options the CLI's flags give. */
export function analyzerOptions(opts: AnalyzeCliOptions, log: (line: string) => void): AnalyzerOptions {
  return {
    models: opts.models,
    device: opts.device,
    ...(opts.precision ? { precision: opts.precision } : {}),
    ...(opts.modelThreads === undefined ? {} : { modelThreads: opts.modelThreads }),
    detector: opts.detector,
    ...(opts.detectorRuntime ? { detectorRuntime: opts.detectorRuntime } : {}),
    ...(opts.tile ? { tile: true } : {}),
    batchSize: opts.batchSize,
    batchMs: opts.batchMs,
    detectInterval: opts.detectInterval ?? FILE_DETECT_INTERVAL,
    ...(opts.reuseChange === undefined ? {} : { reuseChange: opts.reuseChange }),
    log,
  };
}

/** The end-of-run figures, from the analyzer's counters. */
export function runSummary(analyzer: Analyzer, tracks: TrackEndEvent[], started: number): RunSummary {
  const s = analyzer.stats();
  return { streams: [], tracks, events: s.events, frames: s.frames, crops: s.crops, reused: s.reused, batches: s.batches, wallSeconds: (performance.now() - started) / 1000 };
}

