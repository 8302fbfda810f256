// onnxruntime intra-op threads for the model stage, alone and while the detector runs on its thread (not a test):
//
//   npx tsx bench/ort-threads.ts [--models dir[,dir2…]] [--threads 1,2] [--batch 8] [--rounds 3] [--crops 64]
//
// One session pair per thread count, loaded side by side, measured in alternation (rounds), so a change in the
// machine's load hits every setting alike. "busy" repeats the measurement while the detector (worker thread)
// detects the same frame in a loop, as it does in the pipeline. Crops are real: d0.mp4's face, cropped as the
// pipeline crops it. Prints crops/s per setting and its ratio to the first setting. Several model folders (e.g. two
// int8 copies of the encoder) are measured the same way, in alternation, each with each thread count.
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { lastValueFrom, take, toArray } from 'rxjs';
import { createFileSource } from '../src/ingest/file-source.js';
import { loadFaceDetectorThread } from '../src/model/detector-thread.js';
import { loadExpressionModel, type ExpressionModel } from '../src/model/expression-model.js';
import { cropFace } from '../src/pipeline/crop.js';
import type { FaceCrop } from '../src/types.js';
import { sharedPath } from '../test/helpers/shared.js';
import { join, resolve } from 'node:path';
import { cpuShares, cpuTimes, formatShares } from './host.js';

const { values } = parseArgs({
  options: {
    models: { type: 'string', default: join(resolve(import.meta.dirname, '..'), 'models') },
    threads: { type: 'string', default: '1,2' },
    batch: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
    crops: { type: 'string', default: '64' },
  },
});
const threads = values.threads.split(',').map(Number);
const batch = Number(values.batch);

const source = createFileSource({ path: sharedPath('data', 'videos', 'd0.mp4') });
await source.info();
const frame = (await lastValueFrom(source.frames().pipe(take(1), toArray())))[0]!;
const held = { ...frame, data: Buffer.from(frame.data) };
source.release(frame);
const detector = await loadFaceDetectorThread();
const face = (await detector.detect(held))[0]!;
const dirs = values.models.split(',');
const settings = dirs.flatMap((dir) => threads.map((t) => ({ dir, t, name: `${dirs.length > 1 ? `${dir}: ` : ''}${t} thread(s)` })));
const models: ExpressionModel[] = [];
for (const s of settings) models.push(await loadExpressionModel({ modelsDir: s.dir, device: 'cpu', threads: s.t }));
const crop: FaceCrop = { streamId: 'b', frameId: 0, pts: 0, trackId: 't1', box: face.box, size: models[0]!.cropSize, rgb: await cropFace(held, face.box, models[0]!.cropSize, 1.3) };
const work = Array.from({ length: batch }, () => crop);

async function measure(model: ExpressionModel): Promise<number> {
  const n = Math.ceil(Number(values.crops) / batch);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await model.infer(work);
  return (n * batch) / ((performance.now() - t0) / 1000);
}

for (const m of models) await m.infer(work); // warm-up
const result: Record<string, number[]> = {};
let detecting = false;
let detections = 0;
const loop = async (): Promise<void> => {
  while (detecting) {
    await detector.detect(held);
    detections++;
  }
};
const cpuAtStart = cpuTimes();
for (let r = 0; r < Number(values.rounds); r++) {
  for (const busy of [false, true]) {
    detecting = busy;
    const bg = busy ? loop() : Promise.resolve();
    for (let i = 0; i < settings.length; i++) (result[`${settings[i]!.name}${busy ? ', detector busy' : ''}`] ??= []).push(await measure(models[i]!));
    detecting = false;
    await bg;
  }
}
detector.close();
for (const m of models) await m.close();
console.log(`ort-threads: ${cpus().length} CPUs, load ${loadavg()[0]!.toFixed(2)}, ${formatShares(cpuShares(cpuAtStart, cpuTimes()))} over the runs; batch ${batch}; ${values.models}`);
const base = (k: string): number => median(result[k]!);
const keys = Object.keys(result);
for (const k of keys) {
  const ref = k.endsWith('busy') ? keys.find((x) => x.endsWith('busy'))! : keys[0]!;
  console.log(`${k.padEnd(Math.max(32, k.length + 1))} ${base(k).toFixed(1).padStart(7)} crops/s (median of ${result[k]!.length})  ×${(base(k) / base(ref)).toFixed(2)} vs ${ref}`);
}
console.log(`detector calls during the busy runs: ${detections}`);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
