// onnxruntime intra-op threads for the model stage, alone and while the detector runs on its thread (not a test):
//
//   npx tsx bench/ort-threads.ts [--models dir[,dir2…]] [--threads 1,2] [--model-threads 2] [--batch 8] [--rounds 3] [--crops 64]
//
// One session pair per thread count, loaded side by side, measured in alternation (rounds), so a change in the
// machine's load hits every setting alike. "busy" repeats the measurement while the detector (worker thread)
// detects the same frame in a loop, as it does in the pipeline. Crops are real: d0.mp4's face, cropped as the
// pipeline crops it. Prints crops/s per setting and its ratio to the first setting. Several model folders (e.g. two
// int8 copies of the encoder) are measured the same way, in alternation, each with each thread count.
// --model-threads N adds the pipeline's CPU setting: N model threads of one onnxruntime thread each
// (model-threads.ts). Every setting is fed as the pipeline feeds it: two batches in flight (batch.maxInFlight).
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { lastValueFrom, take, toArray } from 'rxjs';
import { createFileSource } from '../src/ingest/file-source.js';
import { loadFaceDetectorThread } from '../src/model/detector-thread.js';
import { loadExpressionModel, type ExpressionModel } from '../src/model/expression-model.js';
import { loadExpressionModelThreads } from '../src/model/model-threads.js';
import { cropFace } from '../src/pipeline/crop.js';
import type { FaceCrop } from '../src/types.js';
import { sharedPath } from '../test/helpers/shared.js';
import { join, resolve } from 'node:path';
import { cpuShares, cpuTimes, formatShares } from './host.js';
import { warmUp } from './warm-up.js';

const { values } = parseArgs({
  options: {
    models: { type: 'string', default: join(resolve(import.meta.dirname, '..'), 'models') },
    threads: { type: 'string', default: '1,2' },
    batch: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
    crops: { type: 'string', default: '64' },
    'model-threads': { type: 'string' },
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
for (const dir of values['model-threads'] === undefined ? [] : dirs) {
  const n = Number(values['model-threads']);
  settings.push({ dir, t: 1, name: `${dirs.length > 1 ? `${dir}: ` : ''}${n} model threads` });
  models.push(await loadExpressionModelThreads({ modelsDir: dir, device: 'cpu', modelThreads: n }));
}
const crop: FaceCrop = { streamId: 'b', frameId: 0, pts: 0, trackId: 't1', box: face.box, size: models[0]!.cropSize, rgb: await cropFace(held, face.box, models[0]!.cropSize, 1.3) };
const work = Array.from({ length: batch }, () => crop);

async function measure(model: ExpressionModel): Promise<number> {
  const n = Math.ceil(Number(values.crops) / batch);
  let left = n;
  const t0 = performance.now();
  const lane = async (): Promise<void> => {
    while (left-- > 0) await model.infer(work);
  };
  await Promise.all([lane(), lane()]);
  return (n * batch) / ((performance.now() - t0) / 1000);
}

for (const m of models) await warmUp(m, work); // every thread loaded and warmed, as in the steady pipeline
const result: Record<string, number[]> = {};
let detecting = false;
let detections = 0;
const detectorRate: Record<string, number[]> = {};
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
    for (let i = 0; i < settings.length; i++) {
      const key = `${settings[i]!.name}${busy ? ', detector busy' : ''}`;
      const before = detections;
      const t = performance.now();
      (result[key] ??= []).push(await measure(models[i]!));
      // the detector's share differs by setting: a model on the main thread holds up the loop that feeds it
      if (busy) (detectorRate[key] ??= []).push((detections - before) / ((performance.now() - t) / 1000));
    }
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
  const det = detectorRate[k] === undefined ? '' : `; detector ${median(detectorRate[k]!).toFixed(1)} calls/s beside it`;
  console.log(`${k.padEnd(Math.max(32, k.length + 1))} ${base(k).toFixed(1).padStart(7)} crops/s (median of ${result[k]!.length})  ×${(base(k) / base(ref)).toFixed(2)} vs ${ref}${det}`);
}
console.log(`detector calls during the busy runs: ${detections}`);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
