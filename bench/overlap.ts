// A/B of how the stages share the cores (not a test): end-to-end frames/s of runPipeline on one video under
// several configurations, run in alternation (round-robin, `--rounds` times) in one process, so that a change
// in the machine's load hits every configuration alike; medians are compared.
//
//   npx tsx bench/overlap.ts [video.mp4] [--rounds 2] [--detect-interval 3] [--models dir]
//
// Configurations: the detector on the main thread or on its worker thread; onnxruntime with one intra-op thread
// per core (onnxruntime's default) or 1 (the product's default on cpu since this bench); the batch deadline 30 ms (live default) or 200 ms (bigger batches).
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createFileSource } from '../src/ingest/file-source.js';
import { loadFaceDetectorThread } from '../src/model/detector-thread.js';
import { loadExpressionModel } from '../src/model/expression-model.js';
import { loadFaceDetector } from '../src/model/face-detector.js';
import { runPipeline } from '../src/pipeline/run.js';
import type { Sink } from '../src/types.js';
import { FILE_DETECT_INTERVAL } from '../src/pipeline/options.js';
import { sharedPath } from '../test/helpers/shared.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '2' },
    'detect-interval': { type: 'string', default: String(FILE_DETECT_INTERVAL) },
    models: { type: 'string', default: join(resolve(import.meta.dirname, '..'), 'models') },
  },
});
const video = positionals[0] ?? sharedPath('data', 'videos', 'd0.mp4');
const interval = Number(values['detect-interval']);
const [mainDetector, threadDetector, ortDefault, ortOne] = await Promise.all([
  loadFaceDetector(),
  loadFaceDetectorThread(),
  loadExpressionModel({ modelsDir: values.models, device: 'cpu', threads: cpus().length }),
  loadExpressionModel({ modelsDir: values.models, device: 'cpu', threads: 1 }),
]);
const configs = [
  { name: 'detector main thread, ORT 1 thread, batch 30 ms', detector: mainDetector, model: ortOne, batchMs: 30 },
  { name: 'detector worker thread, ORT 1 thread, batch 30 ms', detector: threadDetector, model: ortOne, batchMs: 30 },
  { name: 'detector worker thread, ORT 1 thread, batch 200 ms', detector: threadDetector, model: ortOne, batchMs: 200 },
  { name: 'detector worker thread, ORT 1 thread/core, batch 30 ms', detector: threadDetector, model: ortDefault, batchMs: 30 },
];
const nullSink: Sink = { name: 'null', write: async () => undefined, flush: async () => undefined, close: async () => undefined, stats: () => ({ sent: 0, buffered: 0, dropped: 0 }) };
const fps: number[][] = configs.map(() => []);
const batches: number[][] = configs.map(() => []);
console.log(`overlap: ${video}, interval ${interval}; ${cpus().length} CPUs, load ${loadavg()[0]!.toFixed(2)} at start`);
for (let r = 0; r < Number(values.rounds); r++) {
  for (const [i, c] of configs.entries()) {
    const t0 = performance.now();
    const s = await runPipeline({
      sources: [createFileSource({ path: video, maxPending: 24 })],
      detector: c.detector,
      model: c.model,
      sinks: [nullSink],
      options: { detection: { interval }, batch: { maxBatch: 16, maxWaitMs: c.batchMs } },
    });
    fps[i]!.push(s.frames / ((performance.now() - t0) / 1000));
    batches[i]!.push(s.crops / Math.max(1, s.batches));
    process.stderr.write(`round ${r + 1}: ${c.name}: ${fps[i]!.at(-1)!.toFixed(2)} fps\n`);
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ref = median(fps[0]!);
for (const [i, c] of configs.entries()) {
  console.log(`${c.name.padEnd(60)} ${median(fps[i]!).toFixed(2).padStart(6)} fps  ×${(median(fps[i]!) / ref).toFixed(2)}  mean batch ${median(batches[i]!).toFixed(1)}  (runs: ${fps[i]!.map((x) => x.toFixed(2)).join(', ')})`);
}
console.log(`load ${loadavg()[0]!.toFixed(2)} at end`);
mainDetector.close();
threadDetector.close();
await Promise.all([ortDefault.close(), ortOne.close()]);
