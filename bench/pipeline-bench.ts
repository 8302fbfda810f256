// npm run bench [-- video.mp4] [--clip clip.mp4] [--models dir] [--device cpu|cuda|webgpu|auto] [--precision auto|int8|float] [--batch-size N]
//                 [--frames N] [--detect-interval N] [--detector-thread|--no-detector-thread] [--detector-runtime onnx|tfjs] [--model-threads N] [--ort-threads N]
//                 [--face-api-frames N] [--no-face-api] [--json]
//
// Figures on the same machine and run, so they can be compared. On `video` (default d0.mp4):
//   decode-only   ffmpeg → RGB frames into Node, each released at once                 frames/s
//   detector-only face detection on frames already decoded (decoding not counted)       frames/s, per call
//   detector stage the same frames through the detection schedule at --detect-interval  frames/s
//   model stage   real face crops through the batched model stage (batch.ts + infer)    crops/s (and frames/s
//                 at this video's faces per frame); with the int8 encoder, also the float one (.cache/models-float) on the same crops
//   end-to-end    runPipeline with a sink that discards events                         frames/s
// and end-to-end ÷ the slowest stage (in frames/s): how much of the slowest stage's speed the pipeline keeps.
// On `clip` (default d3.mp4: one face, 30 fps, 11.8 s), as a user runs it:
//   10 Hz         `analyze clip --sample-fps 10` in this process (model loading included): clip seconds per
//                 wall second
//   every frame   runPipeline on every frame of the clip (models already loaded)       frames/s
//   face-api.js   its SSD MobileNet detector + expression net (tfjs wasm) on --face-api-frames frames spread
//                 over the clip: frames/s, our every-frame fps ÷ theirs, and recall: frames where face-api finds
//                 a face (score ≥ 0.5) and our every-frame run reports none overlapping it (IoU ≥ 0.3).
// Default models: the shipped ones in models/. The model stage runs as the product runs it: on CPU_MODEL_THREADS
// model threads (model-threads.ts) of one onnxruntime thread each; --model-threads 0 runs it on the main thread
// with --ort-threads intra-op threads (default CPU_INTRA_OP_THREADS), as before 2026-12-07 evening.
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { from, lastValueFrom, tap, toArray } from 'rxjs';
import { createFileSource } from '../src/ingest/file-source.js';
import { CPU_INTRA_OP_THREADS, loadExpressionModel, type ExpressionModel, type ExpressionModelOptions } from '../src/model/expression-model.js';
import { CPU_MODEL_THREADS } from '../src/model/model-thread-count.js';
import { CPU_THREADS_PER_MODEL_THREAD, loadExpressionModelThreads } from '../src/model/model-threads.js';
import { analyze } from '../src/cli/analyze.js';
import { loadFaceDetectorThread } from '../src/model/detector-thread.js';
import { loadFaceDetector, type DetectorRuntime } from '../src/model/face-detector.js';
import { DetectionSchedule } from '../src/pipeline/detect-track.js';
import { iou } from '../src/geometry.js';
import { loadFaceApi } from './face-api.js';
import { cropFace } from '../src/pipeline/crop.js';
import { infer } from '../src/pipeline/infer.js';
import { FILE_DETECT_INTERVAL, resolvePipelineOptions } from '../src/pipeline/options.js';
import { runPipeline } from '../src/pipeline/run.js';
import type { Box, Detection, FaceCrop, Frame, FrameSource, Sink } from '../src/types.js';
import { FLOAT_MODELS_DIR } from '../test/helpers/models.js';
import { sharedPath } from '../test/helpers/shared.js';
import { cpuShares, cpuTimes, formatShares, referenceSpeed } from './host.js';
import { warmUp } from './warm-up.js';

interface Args {
  video: string;
  clip: string;
  detectInterval: number;
  detectorThread: boolean;
  detectorRuntime: DetectorRuntime;
  ortThreads: number | undefined;
  modelThreads: number;
  faceApiFrames: number;
  baseline: boolean;
  models: string;
  device: 'auto' | 'cpu' | 'cuda' | 'webgpu';
  precision: 'auto' | 'float' | 'int8';
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
      precision: { type: 'string', default: 'auto' },
      'batch-size': { type: 'string', default: '16' },
      frames: { type: 'string', default: '300' },
      clip: { type: 'string' },
      'detect-interval': { type: 'string', default: String(FILE_DETECT_INTERVAL) },
      'detector-thread': { type: 'boolean', default: true },
      'no-detector-thread': { type: 'boolean', default: false },
      'detector-runtime': { type: 'string', default: 'onnx' },
      'ort-threads': { type: 'string' },
      'model-threads': { type: 'string' },
      'face-api-frames': { type: 'string', default: '30' },
      'no-face-api': { type: 'boolean', default: false },
      'no-baseline': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const root = resolve(import.meta.dirname, '..');
  return {
    video: positionals[0] ?? sharedPath('data', 'videos', 'd0.mp4'),
    clip: values.clip ?? sharedPath('data', 'videos', 'd3.mp4'),
    detectInterval: Number(values['detect-interval']),
    detectorThread: values['no-detector-thread'] !== true,
    detectorRuntime: values['detector-runtime'] as DetectorRuntime,
    ortThreads: values['ort-threads'] === undefined ? undefined : Number(values['ort-threads']),
    modelThreads: values['model-threads'] === undefined ? CPU_MODEL_THREADS : Number(values['model-threads']),
    faceApiFrames: values['no-face-api'] === true ? 0 : Number(values['face-api-frames']),
    baseline: values['no-baseline'] !== true,
    models: values.models ?? join(root, 'models'),
    device: values.device as Args['device'],
    precision: values.precision as Args['precision'],
    batchSize: Number(values['batch-size']),
    maxFrames: Number(values.frames),
    json: values.json === true,
  };
}

const seconds = (t0: number): number => (performance.now() - t0) / 1000;

/** Decodes the whole video, releasing each frame at once; keeps copies of the frames `keep` picks by index. */
async function decodeOnly(video: string, keep: number | ((index: number) => boolean)): Promise<{ fps: number; frames: number; kept: Frame[] }> {
  const pick = typeof keep === 'number' ? (i: number): boolean => i < keep : keep;
  const source = createFileSource({ path: video, maxPending: 8 });
  await source.info();
  const kept: Frame[] = [];
  let frames = 0;
  const t0 = performance.now();
  await lastValueFrom(
    source.frames().pipe(
      tap((f) => {
        frames++;
        if (pick(frames - 1)) kept.push({ ...f, data: Buffer.from(f.data) });
        source.release(f);
      }),
      toArray(),
    ),
  );
  return { fps: frames / seconds(t0), frames, kept };
}

/** The model as the product loads it (model threads), or on this thread with --model-threads 0. */
function loadModel(args: Args, o: ExpressionModelOptions): Promise<ExpressionModel> {
  const threads = args.ortThreads === undefined ? {} : { threads: args.ortThreads };
  return args.modelThreads === 0 ? loadExpressionModel({ ...o, ...threads }) : loadExpressionModelThreads({ ...o, ...threads, modelThreads: args.modelThreads });
}

async function main(): Promise<void> {
  const args = parseCli(process.argv.slice(2));
  const loadAtStart = loadavg()[0]!;
  const cpuAtStart = cpuTimes();
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  log(`bench: ${args.video}; models ${args.models}; device ${args.device}; batch ${args.batchSize}`);

  const [detector, model] = await Promise.all([
    args.detectorThread ? loadFaceDetectorThread({ runtime: args.detectorRuntime }) : loadFaceDetector({ runtime: args.detectorRuntime }),
    loadModel(args, { modelsDir: args.models, device: args.device, precision: args.precision, log }),
  ]);
  const opts = resolvePipelineOptions({ batch: { maxBatch: args.batchSize }, detection: { interval: args.detectInterval } });

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

  // 2b. the detection schedule at the configured interval on the same frames (detector + tracker, no decoding)
  const schedule = new DetectionSchedule(opts.detection, opts.tracker);
  t0 = performance.now();
  for (const f of frames) {
    const plan = schedule.plan(f);
    if (plan.detect) schedule.detected(f, await detector.detect(f));
  }
  const detectStageFps = frames.length / seconds(t0);
  const detectorShare = schedule.counts.detections / frames.length;
  log(`detector stage at interval ${args.detectInterval}: ${detectStageFps.toFixed(1)} fps (detector on ${(100 * detectorShare).toFixed(0)} % of frames)`);

  // 3. model stage: the real crops, repeated to at least 256, through the batched stage
  const crops: FaceCrop[] = [];
  for (let i = 0; i < frames.length; i++) {
    for (const d of detections[i]!) {
      const f = frames[i]!;
      crops.push({ streamId: 'bench', frameId: f.frameId, pts: f.pts, trackId: 't1', box: d.box, size: model.cropSize, rgb: await cropFace(f, d.box, model.cropSize, opts.crop.scale) });
    }
  }
  const work = Array.from({ length: crops.length > 0 ? Math.max(256, crops.length) : 0 }, (_, i) => crops[i % crops.length]!);
  const stageRate = async (m: ExpressionModel): Promise<number> => {
    if (work.length === 0) return NaN;
    // the steady stage: every model thread loaded (the second joins beside the first batches; loading is in
    // the 10 Hz figure below) and warmed
    await warmUp(m, work.slice(0, args.batchSize));
    const t = performance.now();
    await lastValueFrom(from(work).pipe(infer(m, opts.batch), toArray()));
    return work.length / seconds(t);
  };
  const modelCropsPerSecond = await stageRate(model);
  // the float encoder on the same crops, when scripts/setup-trainer.sh has built it: the int8 gain
  let floatCropsPerSecond = NaN;
  if (model.precision === 'int8' && existsSync(join(FLOAT_MODELS_DIR, 'encoder-faceres-emotion-faceapi.onnx'))) {
    const floatModel = await loadModel(args, { modelsDir: FLOAT_MODELS_DIR, device: args.device, precision: 'float' });
    floatCropsPerSecond = await stageRate(floatModel);
    await floatModel.close();
    log(`model stage, float encoder: ${floatCropsPerSecond.toFixed(1)} crops/s`);
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

  // 5. the 10 Hz realtime factor: analyze as a user runs it (models loaded inside, events to /dev/null)
  const clipInfo = await createFileSource({ path: args.clip }).info();
  const clipSeconds = clipInfo.duration ?? NaN;
  t0 = performance.now();
  const code = await analyze(args.clip, {
    out: '/dev/null',
    sampleFps: 10,
    device: args.device,
    models: args.models,
    batchSize: args.batchSize,
    batchMs: 30,
    detector: 'full',
    detectInterval: args.detectInterval,
    quiet: true,
  });
  const analyzeWall = seconds(t0);
  if (code !== 0) throw new Error(`analyze ${args.clip} exited ${code}`);
  const realtime10 = clipSeconds / analyzeWall;
  log(`10 Hz: analyze ${clipSeconds.toFixed(1)} s of video in ${analyzeWall.toFixed(1)} s = ${realtime10.toFixed(2)}x realtime`);

  // 6. every frame of the clip, models loaded; what we report per frame time, for the recall comparison
  const ours = new Map<number, Box[]>();
  const clipSource = createFileSource({ path: args.clip, maxPending: Math.min(64, args.batchSize + 8) });
  t0 = performance.now();
  const clipSummary = await runPipeline({
    sources: [clipSource],
    detector,
    model,
    sinks: [nullSink],
    options: opts,
    onEvent: (e) => {
      if (e.type !== 'face.observation') return;
      const key = Math.round(e.time * 1000);
      ours.set(key, [...(ours.get(key) ?? []), e.box]);
    },
  });
  const everyFrameFps = clipSummary.frames / seconds(t0);
  log(`every frame: ${clipSummary.frames} frames at ${everyFrameFps.toFixed(1)} fps`);

  // 7. face-api.js on frames spread over the clip
  let faceApi: { frames: number; fps: number; facesFound: number; missedByUs: number; missedByThem: number } | undefined;
  if (args.faceApiFrames > 0) {
    const fa = await loadFaceApi();
    const step = Math.max(1, Math.floor(clipSummary.frames / args.faceApiFrames));
    const sample = (await decodeOnly(args.clip, (i) => i % step === 0 && i / step < args.faceApiFrames)).kept;
    await fa.detect(sample[0]!); // warm-up
    let facesFound = 0;
    let missedByUs = 0;
    let missedByThem = 0;
    let busy = 0;
    for (const f of sample) {
      const t = performance.now();
      const theirs = await fa.detect(f);
      busy += performance.now() - t;
      const mine = ours.get(Math.round(f.pts * 1000)) ?? [];
      facesFound += theirs.length;
      missedByUs += theirs.filter((x) => !mine.some((b) => iou(b, x.box) >= 0.3)).length;
      missedByThem += mine.filter((b) => !theirs.some((x) => iou(b, x.box) >= 0.3)).length;
    }
    faceApi = { frames: sample.length, fps: sample.length / (busy / 1000), facesFound, missedByUs, missedByThem };
    log(`face-api.js: ${sample.length} frames at ${faceApi.fps.toFixed(2)} fps; ${facesFound} faces, ${missedByUs} of them missed by us; ${missedByThem} of ours not found by face-api`);
  }

  // 4b. the same end-to-end run as configured before issue 11 (detector on tfjs-wasm on every frame, on the main thread;
  // onnxruntime with one intra-op thread per core), for a before/after ratio under the same load
  let baselineFps = NaN;
  if (args.baseline) {
    const [oldDetector, oldModel] = await Promise.all([loadFaceDetector({ runtime: 'tfjs' }), loadExpressionModel({ modelsDir: args.models, device: args.device, threads: cpus().length })]);
    t0 = performance.now();
    const old = await runPipeline({
      sources: [createFileSource({ path: args.video, maxPending: Math.min(64, args.batchSize + 8) })],
      detector: oldDetector,
      model: oldModel,
      sinks: [nullSink],
      options: resolvePipelineOptions({ batch: { maxBatch: args.batchSize } }),
    });
    baselineFps = old.frames / seconds(t0);
    oldDetector.close();
    await oldModel.close();
    log(`end-to-end, pre-issue-11 configuration: ${baselineFps.toFixed(1)} fps`);
  }

  const host = cpuShares(cpuAtStart, cpuTimes());
  const reference = await referenceSpeed();
  log(`reference (int8 encoder alone, one thread, batch 16): ${reference.toFixed(1)} crops/s`);
  const stages = { decode: decode.fps, detector: detectStageFps, model: modelFps };
  const slowest = (Object.entries(stages) as [string, number][]).reduce((a, b) => (b[1] < a[1] ? b : a));
  const result = {
    video: args.video,
    models: args.models,
    provider: model.provider,
    detector: detector.name,
    cpus: cpus().length,
    loadavg1: Number(loadAtStart.toFixed(2)),
    loadavg1End: Number(loadavg()[0]!.toFixed(2)),
    stealPercent: host === undefined ? null : Math.round(100 * host.steal),
    referenceCropsPerSecond: round(reference),
    batchSize: args.batchSize,
    decodeFps: round(decode.fps),
    detectorFps: round(detectFps),
    detectInterval: args.detectInterval,
    detectorStageFps: round(detectStageFps),
    detectorShare: Number(detectorShare.toFixed(3)),
    modelThreads: args.modelThreads,
    ortThreads: args.ortThreads ?? (args.modelThreads === 0 ? CPU_INTRA_OP_THREADS : CPU_THREADS_PER_MODEL_THREAD),
    precision: model.precision,
    modelCropsPerSecond: round(modelCropsPerSecond),
    floatModelCropsPerSecond: round(floatCropsPerSecond),
    facesPerFrame: round(facesPerFrame),
    endToEndFps: round(e2eFps),
    slowestStage: slowest[0],
    baselineEndToEndFps: round(baselineFps),
    ratioEndToEndToSlowest: Number((e2eFps / slowest[1]).toFixed(3)),
    clip: args.clip,
    clipSeconds: round(clipSeconds),
    realtime10Hz: Number(realtime10.toFixed(2)),
    everyFrameFps: round(everyFrameFps),
    faceApiFps: faceApi === undefined ? null : Number(faceApi.fps.toFixed(2)),
    oursOverFaceApi: faceApi === undefined ? null : Number((everyFrameFps / faceApi.fps).toFixed(1)),
    faceApiFrames: faceApi?.frames ?? 0,
    faceApiFaces: faceApi?.facesFound ?? 0,
    faceApiFacesWeMiss: faceApi?.missedByUs ?? 0,
    oursFaceApiMisses: faceApi?.missedByThem ?? 0,
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
    ['machine', `${result.cpus} CPUs, load ${result.loadavg1} at start, ${result.loadavg1End} at end, ${formatShares(host)} over the run`],
    ['reference speed', `${result.referenceCropsPerSecond} crops/s (bench/host.ts: the int8 encoder alone, one thread, batch 16, after the run)`],
    ['detector / model threads', `${result.detector} / ${result.modelThreads === 0 ? 'main thread' : `${result.modelThreads} model threads`}, intra-op ${result.ortThreads}`],
    ['decode-only', `${result.decodeFps} frames/s`],
    ['detector-only', `${result.detectorFps} frames/s (one call per frame)`],
    ['detector stage', `${result.detectorStageFps} frames/s at --detect-interval ${result.detectInterval} (detector on ${(100 * result.detectorShare).toFixed(0)} % of frames)`],
    ['model stage (batched)', `${result.modelCropsPerSecond} crops/s at batch ${result.batchSize}, ${result.precision} encoder (${result.facesPerFrame} faces/frame)`],
    ...(Number.isFinite(floatCropsPerSecond)
      ? ([['model stage, float encoder', `${result.floatModelCropsPerSecond} crops/s; int8 / float = ${(modelCropsPerSecond / floatCropsPerSecond).toFixed(2)}`]] as [string, string][])
      : []),
    ['end-to-end', `${result.endToEndFps} frames/s`],
    ['end-to-end / slowest', `${result.ratioEndToEndToSlowest} (slowest: ${result.slowestStage})`],
    ...(args.baseline
      ? ([['end-to-end, as before', `${result.baselineEndToEndFps} frames/s (interval 1, detector on the main thread, ORT ${cpus().length} threads); now / before = ${(e2eFps / baselineFps).toFixed(2)}`]] as [string, string][])
      : []),
    ['clip', `${result.clip} (${result.clipSeconds} s)`],
    ['analyze --sample-fps 10', `${result.realtime10Hz}x realtime (model loading included)`],
    ['every frame', `${result.everyFrameFps} frames/s`],
    ...(faceApi === undefined
      ? []
      : ([
          ['face-api.js (SSD + expressions)', `${result.faceApiFps} frames/s on ${result.faceApiFrames} frames; ours / theirs = ${result.oursOverFaceApi}x`],
          ['face recall vs face-api.js', `${result.faceApiFaces} faces found by face-api, ${result.faceApiFacesWeMiss} of them missed by us; ${result.oursFaceApiMisses} of ours not found by face-api`],
        ] as [string, string][])),
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  process.stdout.write(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n');
}

const round = (x: number): number => (Number.isFinite(x) ? Math.round(x * 10) / 10 : x);

await main();
