// Semver guard: every name the package root exports (values and types), read from src/index.ts with the
// TypeScript checker. A name that disappears or is renamed fails here: that is a breaking change (a new major,
// CHANGELOG.md). A new name is added to the list on purpose, with its docs/api.md entry.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import * as api from '../src/index.js';

const root = join(import.meta.dirname, '..');

const VALUES = [
  'CafeStreamError', 'ConfigError', 'EVENT_SCHEMA_ID', 'EVENT_SCHEMA_VERSION', 'EXIT', 'EXPRESSIONS', 'EventStream',
  'InferenceError', 'IngestError', 'InvalidEventError', 'ModelError', 'RetriesExceededError', 'SinkError', 'analyze',
  'createAnalyzer', 'exitCodeFor', 'fromKafka', 'fromWebSocket', 'isCafeStreamError', 'isEvent', 'parseEvent',
  'toAsyncIterable', 'toJsonl', 'toKafka', 'toSink', 'toWebSocket', 'watch',
];

const TYPES = [
  'AnalysisProgress', 'AnalyzeInput', 'AnalyzeOptions', 'Analyzer', 'AnalyzerOptions', 'AnalyzerStats', 'AsyncIterableOptions',
  'Box', 'CafeStreamEvent', 'ClockKind', 'Device', 'EndedTrack', 'ErrorCode', 'EventBase', 'Expression', 'ExpressionProbabilities',
  'FaceCrop', 'FaceObservationEvent', 'FaceSegmentEvent', 'FromKafkaOptions', 'FromWebSocketOptions', 'JobDoneEvent',
  'KafkaSinkOptions', 'LoadedModels', 'OneShotAnalyzeOptions', 'OneShotWatchOptions', 'Sink', 'SinkStats', 'StreamEndEvent',
  'StreamInfo', 'StreamOfflineEvent', 'StreamOnlineEvent', 'StreamStartEvent', 'TimelineEvent', 'TimelineEventType',
  'TrackEndEvent', 'TrackStartEvent', 'TrackSummary', 'WatchOptions', 'WsSinkOptions',
];

describe('the package root exports', () => {
  it('exactly these values at run time', () => {
    expect(Object.keys(api).sort()).toEqual([...VALUES].sort());
  });

  it('exactly these names, values and types, in src/index.ts', () => {
    const file = join(root, 'src', 'index.ts');
    const program = ts.createProgram([file], { strict: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, types: ['node'] });
    const checker = program.getTypeChecker();
    const names = checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(file)!)!).map((s) => s.name);
    expect(names.sort()).toEqual([...VALUES, ...TYPES].sort());
  });

  it('every export has a section in docs/api.md', () => {
    const doc = readFileSync(join(root, 'docs', 'api.md'), 'utf8');
    const missing = [...VALUES, ...TYPES].filter((n) => !new RegExp(`\`${n}\\b`).test(doc));
    expect(missing).toEqual([]);
  });
});
