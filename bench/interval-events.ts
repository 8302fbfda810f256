// Does the detection interval change what the pipeline reports? (not a test; prints a comparison)
//
//   npx tsx bench/interval-events.ts [clips…] [--intervals 1,3] [--sample-fps N] [--models dir]
//
// Each shared clip runs through runPipeline with the real detector and models/ once per interval; per run it
// prints the tracks and each track's segments (label, start–end), and whether the label sequence per track and
// the segment boundaries (within `--tolerance` seconds, default 0.2) match the first interval's run.
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createFileSource } from '../src/ingest/file-source.js';
import { loadFaceDetectorThread } from '../src/model/detector-thread.js';
import { loadExpressionModel } from '../src/model/expression-model.js';
import { runPipeline } from '../src/pipeline/run.js';
import type { FaceSegmentEvent, Sink } from '../src/types.js';
import { sharedPath } from '../test/helpers/shared.js';
import { cpus, loadavg } from 'node:os';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    intervals: { type: 'string', default: '1,3' },
    'sample-fps': { type: 'string' },
    tolerance: { type: 'string', default: '0.2' },
    models: { type: 'string', default: join(resolve(import.meta.dirname, '..'), 'models') },
  },
});
const intervals = values.intervals.split(',').map(Number);
const tol = Number(values.tolerance);
const sampleFps = values['sample-fps'] === undefined ? undefined : Number(values['sample-fps']);
const clips = positionals.length > 0 ? positionals : ['d0.mp4', 'd3.mp4', 'd12.mp4', 'd18.mp4', 's13.mp4'].map((c) => sharedPath('data', 'videos', c));
const [detector, model] = await Promise.all([loadFaceDetectorThread(), loadExpressionModel({ modelsDir: values.models, device: 'cpu' })]);
const nullSink: Sink = { name: 'null', write: async () => undefined, flush: async () => undefined, close: async () => undefined, stats: () => ({ sent: 0, buffered: 0, dropped: 0 }) };
console.log(`interval-events: ${cpus().length} CPUs, load ${loadavg()[0]!.toFixed(2)}; sample fps ${sampleFps ?? 'all'}; tolerance ${tol} s`);
let allSame = true;
for (const clip of clips) {
  const runs: Map<string, FaceSegmentEvent[]>[] = [];
  for (const n of intervals) {
    const segs = new Map<string, FaceSegmentEvent[]>();
    await runPipeline({
      sources: [createFileSource({ path: clip, ...(sampleFps === undefined ? {} : { sampleFps }) })],
      detector,
      model,
      sinks: [nullSink],
      options: { detection: { interval: n } },
      onEvent: (e) => {
        if (e.type === 'face.segment') segs.set(e.trackId, [...(segs.get(e.trackId) ?? []), e]);
      },
    });
    runs.push(segs);
    const story = [...segs.entries()].map(([t, ss]) => `${t}: ${ss.map((s) => `${s.label} ${s.start.toFixed(2)}–${s.end.toFixed(2)}`).join(', ')}`).join(' | ');
    console.log(`${basename(clip).padEnd(8)} interval ${n}: ${story}`);
  }
  const ref = runs[0]!;
  for (const [i, r] of runs.entries()) {
    if (i === 0) continue;
    const sameTracks = r.size === ref.size && [...ref.keys()].every((k) => r.has(k));
    const sameLabels = sameTracks && [...ref.entries()].every(([k, ss]) => ss.map((s) => s.label).join() === r.get(k)!.map((s) => s.label).join());
    const worst = sameLabels
      ? Math.max(0, ...[...ref.entries()].flatMap(([k, ss]) => ss.flatMap((s, j) => [Math.abs(s.start - r.get(k)![j]!.start), Math.abs(s.end - r.get(k)![j]!.end)])))
      : NaN;
    const same = sameLabels && worst <= tol;
    allSame &&= same;
    console.log(`${basename(clip).padEnd(8)} interval ${intervals[i]} vs ${intervals[0]}: tracks ${sameTracks ? 'same' : 'DIFFER'}, labels ${sameLabels ? 'same' : 'DIFFER'}, boundaries ${Number.isFinite(worst) ? `within ${worst.toFixed(2)} s` : '–'} → ${same ? 'same events' : 'DIFFERENT'}`);
  }
}
console.log(allSame ? 'all clips: same events within tolerance' : 'some clips differ (see above)');
detector.close();
await model.close();
