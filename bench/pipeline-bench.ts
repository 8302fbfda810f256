// npm run bench [-- video.mp4] [--models dir] [--device cpu|cuda|webgpu|auto] [--batch-size N] [--frames N] [--json]
//
// Four figures on the same video, machine and run, so they can be compared:
//   decode-only   ffmpeg → RGB frames into Node, each released at once                 frames/s
//   detector-only face detection on frames already decoded (decoding not counted)       frames/s
//   model stage   real face crops through the batched model stage (batch.ts + infer)    crops/s (and frames/s
//                 at this video's faces per frame)
//   end-to-end    runPipeline with a sink that discards events                         frames/s
// and end-to-end ÷ the slowest stage (in frames/s): how much of the slowest stage's speed the pipeline keeps.
// Default video: d0.mp4 from the shared data (CAFE_SHARED). Default models: the shipped ones in models/.
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { from, lastValueFrom, tap, toArray } from 'rxjs';
import { createFileSource } from '../src/ingest/file-source.js';
import { loadExpressionModel } from '../src/model/expression-model.js';
import { loadFaceDetector } from '../src/model/face-detector.js';
import { cropFace } from '../src/pipeline/crop.js';
import { infer } from '../src/pipeline/infer.js';
import { resolvePipelineOptions } from '../src/pipeline/options.js';
import { runPipeline } from '../src/pipeline/run.js';
import type { Detection, FaceCrop, Frame, FrameSource, Sink } from '../src/types.js';
import { sharedPath } from '../test/helpers/shared.js';

interface Args {
  video: string;
  models: string;
  device: 'auto' | 'cpu' | 'cuda' | 'webgpu';
  batchSize: number;
  maxFrames: number;
  json: boolean;
}

function parseCli(argv: string[]): Args {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      models: { type: 'string' },
      device: { type: 'string', default: 'cpu' },
      'batch-size': { type: 'string', default: '16' },
      frames: { type: 'string', default: '300' },
      json: { type: 'boolean', default: false },
    },
  });
  const root = resolve(import.meta.dirname, '..');
  return {
    video: positionals[0] ?? sharedPath('data', 'videos', 'd0.mp4'),
    models: values.models ?? join(root, 'models'),
    device: values.device as Args['device'],
    batchSize: Number(values['batch-size']),
    maxFrames: Number(values.frames),
    json: values.json === true,
  };
}

const seconds = (t0: number): number => (performance.now() - t0) / 1000;

/** Decodes the whole video, releasing each frame at once; keeps up to `keep` frames (copies) for later stages. */
async function decodeOnly(video: string, keep: number): Promise<{ fps: number; frames: number; kept: Frame[] }> {
  const source = createFileSource({ path: video, maxPending: 8 });
  await source.info();
  const kept: Frame[] = [];
  let frames = 0;
  const t0 = performance.now();
  await lastValueFrom(
    source.frames().pipe(
      tap((f) => {
        frames++;
        if (kept.length < keep) kept.push({ ...f, data: Buffer.from(f.data) });
        source.release(f);
      }),
      toArray(),
    ),
  );
  return { fps: frames / seconds(t0), frames, kept };
}

async function main(): Promise<void> {
  const args = parseCli(process.argv.slice(2));
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  log(`bench: ${args.video}; models ${args.models}; device ${args.device}; batch ${args.batchSize}`);

  const [detector, model] = await Promise.all([loadFaceDetector(), loadExpressionModel({ modelsDir: args.models, device: args.device, log })]);
  const opts = resolvePipelineOptions({ batch: { maxBatch: args.batchSize } });

  // 1. decode only
  const decode = await decodeOnly(args.video, args.maxFrames);
  log(`decode: ${decode.frames} frames at ${decode.fps.toFixed(1)} fps`);

  // 2. detector only, on decoded frames (one warm-up call first: the first call compiles wasm kernels)
  const frames = decode.kept;
  await detector.detect(frames[0]!);
  const detections: Detection[][] = [];
  let t0 = performance.now();
  for (const f of frames) detections.push(await detector.detect(f));
  const detectFps = frames.length / seconds(t0);
  const faces = detections.reduce((n, d) => n + d.length, 0);
  const facesPerFrame = faces / frames.length;
  log(`detector: ${frames.length} frames at ${detectFps.toFixed(1)} fps, ${facesPerFrame.toFixed(2)} faces/frame`);

  // 3. model stage: the real crops, repeated to at least 256, through the batched stage
  const crops: FaceCrop[] = [];
  for (let i = 0; i < frames.length; i++) {
    for (const d of detections[i]!) {
      const f = frames[i]!;
      crops.push({ streamId: 'bench', frameId: f.frameId, pts: f.pts, trackId: 't1', box: d.box, size: model.cropSize, rgb: await cropFace(f, d.box, model.cropSize, opts.crop.scale) });
    }
  }
  let modelCropsPerSecond = NaN;
  if (crops.length > 0) {
    const work = Array.from({ length: Math.max(256, crops.length) }, (_, i) => crops[i % crops.length]!);
    await model.infer(work.slice(0, args.batchSize)); // warm-up
    t0 = performance.now();
    await lastValueFrom(from(work).pipe(infer(model, opts.batch), toArray()));
    modelCropsPerSecond = work.length / seconds(t0);
  }
  const modelFps = facesPerFrame > 0 ? modelCropsPerSecond / facesPerFrame : Infinity;
  log(`model stage: ${modelCropsPerSecond.toFixed(1)} crops/s (${Number.isFinite(modelFps) ? modelFps.toFixed(1) : '∞'} frames/s at this video's faces per frame)`);

  // 4. end to end
  let events = 0;
  const nullSink: Sink = {
    name: 'null',
    write: async () => void events++,
    flush: async () => undefined,
    close: async () => undefined,
    stats: () => ({ sent: events, buffered: 0, dropped: 0 }),
  };
  const source: FrameSource = createFileSource({ path: args.video, maxPending: Math.min(64, args.batchSize + 8) });
  t0 = performance.now();
  const summary = await runPipeline({ sources: [source], detector, model, sinks: [nullSink], options: opts });
  const e2eFps = summary.frames / seconds(t0);
  log(`end-to-end: ${summary.frames} frames at ${e2eFps.toFixed(1)} fps (${summary.batches} batches, ${events} events)`);

  const stages = { decode: decode.fps, detector: detectFps, model: modelFps };
  const slowest = (Object.entries(stages) as [string, number][]).reduce((a, b) => (b[1] < a[1] ? b : a));
  const result = {
    video: args.video,
    models: args.models,
    provider: model.provider,
    detector: detector.name,
    cpus: cpus().length,
    loadavg1: Number(loadavg()[0]!.toFixed(2)),
    batchSize: args.batchSize,
    decodeFps: round(decode.fps),
    detectorFps: round(detectFps),
    modelCropsPerSecond: round(modelCropsPerSecond),
    facesPerFrame: round(facesPerFrame),
    endToEndFps: round(e2eFps),
    slowestStage: slowest[0],
    ratioEndToEndToSlowest: Number((e2eFps / slowest[1]).toFixed(3)),
  };
  detector.close();
  await model.close();
  if (args.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const rows: [string, string][] = [
    ['video', result.video],
    ['models / provider', `${result.models} / ${result.provider}`],
    ['detector', result.detector],
    ['machine', `${result.cpus} CPUs, load ${result.loadavg1}`],
    ['decode-only', `${result.decodeFps} frames/s`],
    ['detector-only', `${result.detectorFps} frames/s`],
    ['model stage (batched)', `${result.modelCropsPerSecond} crops/s at batch ${result.batchSize} (${result.facesPerFrame} faces/frame)`],
    ['end-to-end', `${result.endToEndFps} frames/s`],
    ['end-to-end / slowest', `${result.ratioEndToEndToSlowest} (slowest: ${result.slowestStage})`],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  process.stdout.write(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n');
}

const round = (x: number): number => (Number.isFinite(x) ? Math.round(x * 10) / 10 : x);

await main();
