// npx tsx bench/reuse.ts [--changes 0,1,2,3,5] [--sample-fps 10] [--json]
//
// What not re-reading unchanged faces (pipeline option reuse.maxChange) costs and saves, against reading every
// crop (maxChange 0) on the same frames, tracks and models: the 33 shared clips (labels.csv, at --sample-fps)
// and the 16-face grid of bench/grid.ts (at 5 Hz, when it has been built). Per setting:
//   reused       share of face crops whose track's last probabilities were carried forward (no model read)
//   label        share of observations whose smoothed label equals the every-crop run's
//   |Δp|         mean and 99th percentile of the per-observation probability difference
//   dominant     tracks whose track.end dominant equals the every-crop run's
//   wall         seconds for the whole set (models loaded once, before)
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createFileSource } from '../src/ingest/file-source.js';
import { loadFaceDetectorThread } from '../src/model/detector-thread.js';
import { loadExpressionModel } from '../src/model/expression-model.js';
import { FILE_DETECT_INTERVAL } from '../src/pipeline/options.js';
import { runPipeline } from '../src/pipeline/run.js';
import type { Sink, TimelineEvent } from '../src/types.js';
import { sharedPath } from '../test/helpers/shared.js';

const { values } = parseArgs({
  options: {
    changes: { type: 'string', default: '0,1,2,3,5' },
    'sample-fps': { type: 'string', default: '10' },
    json: { type: 'boolean', default: false },
  },
});
const changes = values.changes.split(',').map(Number);
if (changes[0] !== 0) changes.unshift(0);
const root = resolve(import.meta.dirname, '..');
const clipsDir = sharedPath('data', 'clips');
const inputs: { path: string; sampleFps: number }[] = readFileSync(join(clipsDir, 'labels.csv'), 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((l) => ({ path: join(clipsDir, l.split(',')[0]!), sampleFps: Number(values['sample-fps']) }));
const grid = join(root, '.cache', 'bench', 'grid-4x4-320-5.3s-v2.mp4');
if (existsSync(grid)) inputs.push({ path: grid, sampleFps: 5 });

const [detector, model] = await Promise.all([loadFaceDetectorThread(), loadExpressionModel({ modelsDir: join(root, 'models'), device: 'cpu' })]);
const nullSink: Sink = { name: 'null', write: async () => undefined, flush: async () => undefined, close: async () => undefined, stats: () => ({ sent: 0, buffered: 0, dropped: 0 }) };

interface Run {
  obs: Map<string, { label: string; p: number[] }>;
  dominant: Map<string, string>;
  crops: number;
  reused: number;
  wall: number;
}

async function runAll(maxChange: number): Promise<Run> {
  const run: Run = { obs: new Map(), dominant: new Map(), crops: 0, reused: 0, wall: 0 };
  for (const input of inputs) {
    const t0 = performance.now();
    const summary = await runPipeline({
      sources: [createFileSource({ path: input.path, sampleFps: input.sampleFps, maxPending: 24 })],
      detector,
      model,
      sinks: [nullSink],
      options: { detection: { interval: FILE_DETECT_INTERVAL }, reuse: { maxChange } },
      onEvent: (e: TimelineEvent) => {
        if (e.type === 'face.observation') run.obs.set(`${input.path}|${e.trackId}|${e.frameId}`, { label: e.label, p: Object.values(e.probabilities) });
        if (e.type === 'track.end') run.dominant.set(`${input.path}|${e.trackId}`, e.summary.dominant);
      },
    });
    run.wall += (performance.now() - t0) / 1000;
    run.crops += summary.crops;
    run.reused += summary.reused;
  }
  return run;
}

const base = await runAll(0);
const rows = [];
for (const c of changes) {
  const r = c === 0 ? base : await runAll(c);
  let same = 0;
  let n = 0;
  const diffs: number[] = [];
  for (const [k, o] of r.obs) {
    const b = base.obs.get(k);
    if (b === undefined) continue;
    n++;
    if (b.label === o.label) same++;
    diffs.push(o.p.reduce((m, v, i) => m + Math.abs(v - b.p[i]!), 0) / o.p.length);
  }
  diffs.sort((a, b) => a - b);
  let dom = 0;
  for (const [k, d] of r.dominant) if (base.dominant.get(k) === d) dom++;
  rows.push({
    maxChange: c,
    reused: Number((r.reused / Math.max(1, r.crops)).toFixed(3)),
    crops: r.crops,
    labelAgreement: Number((same / Math.max(1, n)).toFixed(4)),
    matched: `${n} of ${base.obs.size}`,
    meanAbsDp: Number((diffs.reduce((a, b) => a + b, 0) / Math.max(1, diffs.length)).toFixed(4)),
    p99AbsDp: Number((diffs[Math.floor(0.99 * (diffs.length - 1))] ?? 0).toFixed(4)),
    dominantAgreement: `${dom} of ${r.dominant.size}`,
    wallSeconds: Number(r.wall.toFixed(1)),
  });
}
detector.close();
await model.close();
if (values.json) process.stdout.write(`${JSON.stringify(rows)}\n`);
else {
  process.stdout.write(`${inputs.length} inputs (${inputs.length - (existsSync(grid) ? 1 : 0)} clips${existsSync(grid) ? ' + the 16-face grid' : ''})\n`);
  for (const r of rows) process.stdout.write(`${Object.entries(r).map(([k, v]) => `${k} ${v}`).join('  ')}\n`);
}
