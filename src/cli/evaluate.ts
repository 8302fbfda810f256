// `cafe-stream evaluate <layout:path>...`: scores labelled image sets through the product's own path
// (detector → largest face → crop → expression model) and prints, per set: accuracy, macro recall, per-class
// recall, the confusion matrix and faces not found. `--json` for machines, `--save-crops` for the trainer.
import { Command, Option } from 'commander';
import { basename } from 'node:path';
import { ConfigError, errorLine } from '../errors.js';
import { type Dataset, isClipSet, loadDataset, spreadLimit } from '../eval/datasets.js';
import { type ClipSetResult, evaluateClips } from '../eval/clips.js';
import { loadFaceDetectorThread } from '../model/detector-thread.js';
import { CropExporter } from '../eval/crop-export.js';
import { type CropClassifier, type SetResult, evaluateSet } from '../eval/evaluate-set.js';
import { formatDomain } from '../eval/metrics.js';
import { type FaceDetector, loadFaceDetector } from '../model/face-detector.js';
import type { ExpressionModel } from '../model/expression-model.js';
import { loadExpressionModelThreads } from '../model/model-threads.js';
import { resolveModelSet } from '../model/manifest.js';
import { PEERS, type PeerName, loadPeer } from '../eval/peers/index.js';
import { resolvePipelineOptions } from '../pipeline/options.js';
import { exitCodeFor } from './exit-codes.js';
import { defaultModelsDir } from './paths.js';
import { modelThreadCount, positiveInteger, positiveNumber } from './arg-parsers.js';

export interface EvaluateOptions {
  models: string;
  device: 'auto' | 'cpu' | 'cuda' | 'webgpu';
  precision: 'auto' | 'float' | 'int8';
  detector: 'short' | 'full';
  detectorRuntime: 'onnx' | 'tfjs';
  tile?: boolean;
  asCrops?: boolean;
  limit?: number;
  saveCrops?: string;
  json?: boolean;
  batchSize?: number;
  quiet?: boolean;
  peer?: PeerName;
  sampleFps?: number;
  modelThreads?: number;
}

export function register(program: Command): void {
  program
    .command('evaluate')
    .description('score labelled image sets through the product path (detector, crop, expression model): accuracy, recall, confusion')
    .argument('<sets...>', 'labelled sets as [name=]layout:path (layouts: taiwanese, csv, folder, ferplus, clips)')
    .option('--models <dir>', 'folder with the encoder and head .onnx files and their manifests', defaultModelsDir())
    .addOption(new Option('--device <device>', 'where the expression models run').choices(['auto', 'cpu', 'cuda', 'webgpu']).default('auto'))
    .addOption(new Option('--precision <p>', 'encoder copy, as for analyze: auto, int8 or float').choices(['auto', 'float', 'int8']).default('auto'))
    .addOption(new Option('--detector <model>', "face detector, as for analyze: 'full' or 'short'").choices(['short', 'full']).default('full'))
    .addOption(new Option('--detector-runtime <r>', "the detector's runtime: onnx (onnxruntime, ~5× faster per call) or tfjs (@tensorflow-models/face-detection on tfjs-wasm); the same weights").choices(['onnx', 'tfjs']).default('onnx'))
    .option('--tile', 'also detect in native-resolution tiles, as for analyze (a photo is scanned in full)')
    .option('--as-crops', 'the images are face crops already: no detector, the whole image is the crop')
    .option('--limit <n>', 'score at most n images per set, spread evenly over the set (quick runs)', positiveInteger)
    .option('--save-crops <dir>', 'write every crop the model sees as PNG plus dir/crops.csv (framing) and dir/not-found.csv')
    .option('--json', 'print the metrics as one JSON object on stdout (the table goes to stderr)')
    .option('--batch-size <n>', 'crops per model call (clips: 16, as analyze)', positiveInteger)
    .option('--model-threads <n>', 'on the CPU: threads that read batches, as for analyze (default min(2, cores)); 0: on the main thread', modelThreadCount)
    .option('--sample-fps <n>', 'clips: analyse at most n frames per second, as analyze --sample-fps (default: every frame)', positiveNumber)
    .addOption(new Option('--peer <name>', 'score a packaged peer model on the same crops instead of ours (dev dependencies)').choices([...PEERS]))
    .option('-q, --quiet', 'no progress lines and no table on stderr (errors still print)')
    .addHelpText(
      'after',
      `
Layouts:
  taiwanese:DIR   uncropped photos; label = 5th character of the file name (a neutral, b happiness,
                  c sadness, d anger, e disgust, f fear, g surprise; 0 = unlabelled, skipped);
                  group = performer (first two characters)
  csv:FILE        rows path,label (optional header); label = class name or index 0-6 in the order
                  surprise, fear, disgust, happiness, sadness, anger, neutral; paths relative to the
                  csv's folder; group = file stem before its last '_' (buaa-55_24.jpg -> buaa-55)
  folder:DIR      DIR/<class name>/** images (happy/, sad/, ... synonyms accepted)
  ferplus:DIR     DIR/label.csv votes; majority label, ties for the top and contempt/unknown/NF
                  winners dropped (the trainer's 'majority' protocol); 48x48 crops: no detector
  clips:FILE      labelled videos, rows path,label[,source]: each clip runs through what analyze runs
                  (same defaults, --sample-fps honoured) and its label is read off the timeline: the
                  main track's (seen longest) dominant expression; also the argmax of its mean
                  probabilities. With --peer, the peer reads the main track's crops: same sampled
                  frames, same faces; its label is its most frequent per-crop label.
  name=layout:DIR names the set's domain in tables, JSON and crop folders.

Uncropped photos go through exactly what analyze does to a frame: the same detector and options, the
crop of pipeline/crop.ts (square, 1.3 x the longer box side, edge-replicated, resized to the model's
crop size). When a photo shows several faces, the largest is scored. A photo without a face counts
in "faces not found" and as an error in "all images" accuracy; "accuracy" is on found faces.

--save-crops writes face images to disk (only when asked): DIR/<domain>/<image>.png and DIR/crops.csv
with crop, label, domain, group, source, box_x, box_y, box_w, box_h (detector box, source pixels),
crop_x, crop_y, crop_side (the square cut from the source), right_eye_x, right_eye_y, left_eye_x,
left_eye_y (detector keypoints), predicted, p_<class>.

Examples:
  cafe-stream evaluate taiwanese:data/taiwanese/faces_256x256 nir=csv:data/nir/labels.csv
  cafe-stream evaluate ferplus:data/ferplus/FER2013Valid --json > valid.json
  cafe-stream evaluate folder:photos --limit 50 --save-crops runs/crops/photos
  cafe-stream evaluate clips:data/clips/labels.csv --sample-fps 10 --peer faceapi

Exit codes: 0 ok, 2 bad usage or set, 6 model did not load, 7 detection/inference failed.`,
    )
    .action(async (sets: string[], opts: EvaluateOptions) => {
      process.exitCode = await evaluate(sets, opts);
    });
}

export interface DomainReport extends Omit<SetResult, 'metrics'> {
  domain: string;
  spec: string;
  layout: string;
  crops: boolean;
  metrics: SetResult['metrics'];
}

export async function evaluate(specs: string[], opts: EvaluateOptions): Promise<number> {
  const info = (line: string): void => {
    if (!opts.quiet) process.stderr.write(`cafe-stream: ${line}\n`);
  };
  const fail = (err: unknown): number => {
    process.stderr.write(`cafe-stream: error: ${errorLine(err)}\n`);
    return exitCodeFor(err);
  };

  let datasets: Dataset[];
  let cropScale: number;
  try {
    datasets = specs.map((s) => {
      const d = loadDataset(s, opts.asCrops ? { asCrops: true } : {});
      return { ...d, samples: spreadLimit(d.samples, opts.limit) };
    });
    cropScale = resolvePipelineOptions().crop.scale;
  } catch (err) {
    return fail(err);
  }

  let detector: FaceDetector | undefined;
  let model: ExpressionModel | undefined;
  let peer: CropClassifier | undefined;
  let exporter: CropExporter | undefined;
  const photoSets = datasets.filter((d) => !isClipSet(d));
  const clipSets = datasets.filter(isClipSet);
  if (clipSets.length > 0 && opts.saveCrops !== undefined) return fail(new ConfigError('--save-crops', '--save-crops is for photo sets only, not clips: sets'));
  try {
    const needDetector = clipSets.length > 0 || photoSets.some((d) => !d.crops);
    // clips go through analyze's own detector: on its thread, beside the model stage
    detector = needDetector
      ? await (clipSets.length > 0 ? loadFaceDetectorThread : loadFaceDetector)({ model: opts.detector, runtime: opts.detectorRuntime, ...(opts.tile ? { tile: true } : {}) })
      : undefined;
    // clips need our model even with a peer: it runs the timeline whose main track the peer reads
    // on model threads, as analyze runs it: batches are read while the next images decode and are detected
    const m =
      opts.peer === undefined || clipSets.length > 0
        ? (model = await loadExpressionModelThreads({ modelsDir: opts.models, device: opts.device, precision: opts.precision, log: info, ...(opts.modelThreads === undefined ? {} : { modelThreads: opts.modelThreads }) }))
        : undefined;
    // a peer reads the crops our models would read: same size, same framing
    const cropSize = m?.cropSize ?? cropSizeOf(await resolveModelSet(opts.models));
    if (opts.peer !== undefined) {
      peer = await loadPeer(opts.peer);
      info(`peer ${peer.name} on the crops of ${opts.models}`);
    }
    const classifier: CropClassifier = peer ?? {
      name: 'cafe-stream',
      classify: (crops) => m!.infer(crops.map((c) => ({ streamId: 'evaluate', frameId: 0, pts: 0, trackId: '', box: { x: 0, y: 0, width: 0, height: 0 }, size: c.size, rgb: Buffer.from(c.rgb.buffer, c.rgb.byteOffset, c.rgb.byteLength) }))),
      close: () => m!.close(),
    };
    if (opts.saveCrops !== undefined) {
      exporter = new CropExporter(opts.saveCrops);
      info(`writing face crops to ${opts.saveCrops} (--save-crops)`);
    }
    const reports: DomainReport[] = [];
    const tables: string[] = [];
    for (const d of photoSets) {
      info(`${d.domain}: ${d.samples.length} labelled images (${d.crops ? 'face crops, no detector' : `detector ${detector!.name}`}; crop ${cropSize} px)`);
      const started = performance.now();
      const ex = exporter;
      const result = await evaluateSet({
        dataset: d,
        ...(detector ? { detector } : {}),
        classifier,
        cropSize,
        cropScale,
        batchSize: opts.batchSize ?? 32,
        // a packaged peer reads one batch at a time, as it was measured
        batchesInFlight: peer === undefined ? 2 : 1,
        ...(ex ? { onCrop: (r) => ex.write(r), onNotFound: (s, reason) => ex.notFound(s, d.domain, reason) } : {}),
        onProgress: (done, total) => {
          if (done % 200 === 0 && done < total) info(`${d.domain}: ${done}/${total}`);
        },
      });
      for (const u of result.unreadable.slice(0, 5)) info(`${d.domain}: unreadable ${u.source}: ${u.reason}`);
      info(`${d.domain}: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      reports.push({ domain: d.domain, spec: d.spec, layout: d.layout, crops: d.crops, ...result });
      tables.push(formatDomain(d.domain, result.metrics));
    }
    const clipReports: ClipReport[] = [];
    for (const d of clipSets) {
      info(`${d.domain}: ${d.samples.length} labelled clips (as analyze${opts.sampleFps ? ` --sample-fps ${opts.sampleFps}` : ''}; detector ${detector!.name})`);
      const started = performance.now();
      const result = await evaluateClips({
        dataset: d,
        detector: detector!,
        model: model!,
        ...(opts.sampleFps === undefined ? {} : { sampleFps: opts.sampleFps }),
        ...(opts.batchSize === undefined ? {} : { maxBatch: opts.batchSize }),
        ...(peer ? { peer } : {}),
        onClip: (c, i, n) => info(`${d.domain}: ${i + 1}/${n} ${basename(c.source)} (${c.label}): ${c.error ? `error: ${c.error}` : c.dominant ?? 'no face'}`),
      });
      info(`${d.domain}: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      clipReports.push({ domain: d.domain, spec: d.spec, layout: d.layout, ...result });
      tables.push(formatClips(d.domain, result, peer !== undefined));
    }
    const table = tables.join('\n');
    if (opts.json) {
      if (!opts.quiet) process.stderr.write(table);
      const out = {
        classifier: classifier.name,
        models: opts.models,
        detector: detector?.name ?? null,
        cropSize,
        cropScale,
        domains: reports.map((r) => ({ domain: r.domain, spec: r.spec, layout: r.layout, crops: r.crops, noFace: r.noFace, unreadable: r.unreadable, ...r.metrics })),
        ...(clipReports.length > 0 ? { clips: clipReports.map(clipJson) } : {}),
      };
      process.stdout.write(JSON.stringify(out) + '\n');
    } else {
      process.stdout.write(table);
    }
    return 0;
  } catch (err) {
    return fail(err);
  } finally {
    await exporter?.close().catch(() => undefined);
    detector?.close();
    await model?.close();
    await peer?.close().catch(() => undefined);
  }
}

interface ClipReport extends ClipSetResult {
  domain: string;
  spec: string;
  layout: string;
}

/** JSON for one clip set: ours (dominant; mean argmax), the peer's when asked, and every clip's reading. */
function clipJson(r: ClipReport): Record<string, unknown> {
  return {
    domain: r.domain,
    spec: r.spec,
    layout: r.layout,
    noFace: r.noFace,
    unreadable: r.unreadable,
    nonNeutral: r.nonNeutral,
    nonNeutralAsNeutral: r.nonNeutralAsNeutral,
    ...r.metrics,
    meanArgmax: r.meanMetrics,
    ...(r.peer ? { peer: { name: r.peer.name, nonNeutralAsNeutral: r.peer.nonNeutralAsNeutral, ...r.peer.metrics, meanArgmax: r.peer.meanMetrics } } : {}),
    perClip: r.clips.map((c, i) => ({ ...c, ...(r.peer ? { peer: { frequent: r.peer.clips[i]?.frequent ?? null, meanArgmax: r.peer.clips[i]?.meanArgmax ?? null } } : {}) })),
  };
}

/** The table for a clip set: ours by `dominant`, then by mean argmax, then the peer, then the clips ours missed. */
function formatClips(domain: string, r: ClipSetResult, withPeer: boolean): string {
  const lines = [
    formatDomain(`${domain} (clips; label = main track's dominant)`, r.metrics).trimEnd(),
    `  non-neutral clips read as neutral: ${r.nonNeutralAsNeutral} of ${r.nonNeutral}; clips with no face: ${r.noFace}; unreadable: ${r.unreadable.length}`,
    ...r.unreadable.map((u) => `  unreadable ${basename(u.source)}: ${u.reason}`),
    `  label = argmax of the main track's mean probabilities: accuracy ${(100 * r.meanMetrics.accuracy).toFixed(1)}%, macro recall ${(100 * r.meanMetrics.macroRecall).toFixed(1)}%`,
  ];
  if (withPeer && r.peer) {
    lines.push(formatDomain(`${domain} (clips; peer ${r.peer.name}, most frequent label on the same crops)`, r.peer.metrics).trimEnd());
    lines.push(`  peer: non-neutral clips read as neutral: ${r.peer.nonNeutralAsNeutral} of ${r.nonNeutral}; mean-argmax accuracy ${(100 * r.peer.meanMetrics.accuracy).toFixed(1)}%`);
  }
  const missed = r.clips.filter((c) => c.dominant !== undefined && c.dominant !== c.label);
  if (missed.length > 0) lines.push('  misread: ' + missed.map((c) => `${basename(c.source)} ${c.label}→${c.dominant}`).join(', '));
  return lines.join('\n') + '\n';
}

/** The crop side the pipeline uses with these models (ExpressionModel.cropSize, without loading them). */
function cropSizeOf(set: Awaited<ReturnType<typeof resolveModelSet>>): number {
  const e = set.encoder.manifest.inputs.image;
  const h = set.head.manifest.inputs.image;
  return Math.max(e.width, e.height, h.width, h.height);
}

