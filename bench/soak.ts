// Soak benchmark for live streams (not a test): N looping RTSP cameras (the local GStreamer server serving the
// shared clips) through one LiveRunner for M minutes, with the real detector and models.
//
//   npx tsx bench/soak.ts --streams 2 --minutes 1 [--sample-fps 10] [--models dir] [--interval 10] [--detector-thread]
//                         [--detect-interval N] [--in-flight N] [--no-mosaic] [--detector-runtime onnx|tfjs]
//
// Every `interval` seconds it prints RSS and, per stream, decoded / analysed / skipped fps over that interval;
// at the end, end-to-end latency p50/p95 (a frame's wall-clock time → its face.observation accepted by the
// sink) and the model stage's mean batch size, and how many streams were served in full (analysed ≥ 95 % of
// decoded frames, nothing skipped to speak of) with the machine's capacity in such streams (all analysed
// frames per second ÷ the per-stream rate). The sink is an in-memory counter, so sink I/O is not measured.
// Needs CAFE_SHARED (test/helpers/shared.ts) for the clips and /usr/bin/python3 with GStreamer's RTSP server.
import { spawn } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { parseStreamConfig } from '../src/config.js';
import { LiveMetrics } from '../src/http/metrics.js';
import { loadFaceDetectorThread } from '../src/model/detector-thread.js';
import { loadFaceDetector, type DetectorRuntime } from '../src/model/face-detector.js';
import { loadExpressionModel } from '../src/model/expression-model.js';
import { loadExpressionModelThreads } from '../src/model/model-threads.js';
import { LiveRunner } from '../src/live/live-runner.js';
import type { Sink, SinkStats, TimelineEvent } from '../src/types.js';
import { sharedPath } from '../test/helpers/shared.js';
import { cpuShares, cpuTimes, formatShares } from './host.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLIPS = ['d0.mp4', 'd3.mp4', 'd12.mp4', 'd18.mp4'];

const { values: args } = parseArgs({
  options: {
    streams: { type: 'string', default: '2' },
    minutes: { type: 'string', default: '1' },
    'sample-fps': { type: 'string' },
    models: { type: 'string' },
    interval: { type: 'string', default: '10' },
    device: { type: 'string', default: 'cpu' },
    'detector-thread': { type: 'boolean', default: false },
    'detect-interval': { type: 'string', default: '1' },
    'in-flight': { type: 'string', default: '2' },
    // --no-mosaic: every frame its own detector call (the detector's default shares calls across cameras)
    mosaic: { type: 'boolean', default: true },
    'detector-runtime': { type: 'string', default: 'onnx' },
    'scan-seconds': { type: 'string' },
    // 0: the model on the main thread (2 intra-op threads), as before 2026-12-07 evening; default: serve's model threads
    'model-threads': { type: 'string' },
  },
  allowNegative: true,
});
const nStreams = Number(args.streams);
const minutes = Number(args.minutes);
const interval = Number(args.interval);
const sampleFps = args['sample-fps'] === undefined ? undefined : Number(args['sample-fps']);
const modelsDir =
  args.models ?? (existsSync(join(repoRoot, '.cache', 'tiny-models')) && !existsSync(join(repoRoot, 'models', 'cafe-head.onnx')) ? join(repoRoot, '.cache', 'tiny-models') : join(repoRoot, 'models'));

function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => res(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

class CountingSink implements Sink {
  readonly name = 'count';
  #n = 0;
  async write(): Promise<void> {
    this.#n++;
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
  stats(): SinkStats {
    return { sent: this.#n, buffered: 0, dropped: 0 };
  }
}

async function main(): Promise<void> {
  const port = await freePort();
  // the one setting for the shared data (test/helpers/shared.ts): a missing clip fails loudly there
  const mounts = Array.from({ length: nStreams }, (_, i) => ({ id: `cam${i}`, file: sharedPath('data', 'videos', CLIPS[i % CLIPS.length]!) }));
  const server = spawn('/usr/bin/python3', [join(repoRoot, 'scripts', 'rtsp-server.py'), '--port', String(port), ...mounts.flatMap((m) => ['--mount', `/${m.id}=${m.file}`])], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((res, rej) => {
    server.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && res());
    server.once('exit', (c) => rej(new Error(`rtsp server exited ${c}`)));
  });

  const log = pino({ level: process.env['LOG_LEVEL'] ?? 'warn' }, pino.destination(2));
  const metrics = new LiveMetrics({ defaultMetrics: false });
  // serve runs the detector on the main thread; --detector-thread runs it on its worker thread
  const detectorOptions = { mosaic: args.mosaic, runtime: args['detector-runtime'] as DetectorRuntime };
  const detector = args['detector-thread'] === true ? await loadFaceDetectorThread(detectorOptions) : await loadFaceDetector(detectorOptions);
  const modelOptions = { modelsDir, device: args.device as 'cpu', log: (m: string) => console.error(m) };
  const model =
    args['model-threads'] === '0'
      ? await loadExpressionModel(modelOptions)
      : await loadExpressionModelThreads({ ...modelOptions, ...(args['model-threads'] === undefined ? {} : { modelThreads: Number(args['model-threads']) }) });
  const latencies: number[] = [];
  const onEvent = (e: TimelineEvent): void => {
    if (e.type === 'face.observation') latencies.push(Date.now() / 1000 - e.time);
  };
  // serve's `pipeline.detection.interval` (default 1: the detector on every frame)
  const options = { detection: { interval: Number(args['detect-interval']), ...(args['scan-seconds'] === undefined ? {} : { scanSeconds: Number(args['scan-seconds']) }) } };
  // serve's bound on frames of all cameras inside the pipeline at once (admission.ts, default 2)
  const maxFramesInFlight = Number(args['in-flight']);
  const runner = new LiveRunner({ detector, model, sinks: [new CountingSink()], metrics, log, onEvent, options, maxFramesInFlight });
  for (const m of mounts) {
    runner.start(parseStreamConfig({ id: m.id, url: `rtsp://127.0.0.1:${port}/${m.id}`, ...(sampleFps === undefined ? {} : { sampleFps }) }));
  }

  console.log(`soak: ${nStreams} streams × ${minutes} min, sample fps ${sampleFps ?? 'all'}, models ${modelsDir}, detector ${detector.name}, detect interval ${args['detect-interval']}, frames in flight ${args['in-flight']}`);
  console.log('t(s)  rss(MB)  ' + mounts.map((m) => `${m.id}: dec/ana/skip fps`).join('  '));
  const t0 = Date.now();
  const cpuAtStart = cpuTimes();
  let prev = new Map(runner.list().map((s) => [s.id, s]));
  const rssSeries: number[] = [];
  const fpsRows: Record<string, { analysed: number[]; skipped: number[]; decoded: number[] }> = {};
  const endAt = t0 + minutes * 60_000;
  while (Date.now() < endAt) {
    await new Promise((r) => setTimeout(r, interval * 1000));
    const now = new Map(runner.list().map((s) => [s.id, s]));
    const rss = process.memoryUsage().rss / 2 ** 20;
    rssSeries.push(rss);
    const cells = mounts.map((m) => {
      const a = now.get(m.id)!;
      const b = prev.get(m.id)!;
      const f = (k: 'decoded' | 'analysed' | 'skipped'): number => (a[k] - b[k]) / interval;
      const row = (fpsRows[m.id] ??= { analysed: [], skipped: [], decoded: [] });
      row.decoded.push(f('decoded'));
      row.analysed.push(f('analysed'));
      row.skipped.push(f('skipped'));
      return `${f('decoded').toFixed(1)}/${f('analysed').toFixed(1)}/${f('skipped').toFixed(1)} (${a.state})`;
    });
    console.log(`${((Date.now() - t0) / 1000).toFixed(0).padStart(4)}  ${rss.toFixed(0).padStart(7)}  ${cells.join('  ')}`);
    prev = now;
  }
  await runner.close();
  const dc = await detector.counts();
  detector.close();
  server.kill('SIGTERM');

  // the first interval includes connecting and warm-up: report steady state from the second on
  const steady = <T>(xs: T[]): T[] => (xs.length > 1 ? xs.slice(1) : xs);
  const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
  latencies.sort((a, b) => a - b);
  const batch = (await metrics.registry.getSingleMetricAsString('cafe_model_batch_size')).match(/_(sum|count) (\S+)/g) ?? [];
  const [sum, count] = batch.map((l) => Number(l.split(' ')[1]));
  console.log('\nsummary (steady state, intervals 2..n):');
  for (const m of mounts) {
    const r = fpsRows[m.id]!;
    console.log(`  ${m.id}: decoded ${mean(steady(r.decoded)).toFixed(1)} fps, analysed ${mean(steady(r.analysed)).toFixed(1)} fps, skipped ${mean(steady(r.skipped)).toFixed(1)} fps`);
  }
  let full = 0;
  let analysedTotal = 0;
  let decodedTotal = 0;
  for (const m of mounts) {
    const r = fpsRows[m.id]!;
    const a = mean(steady(r.analysed));
    const d = mean(steady(r.decoded));
    analysedTotal += a;
    decodedTotal += d;
    if (d > 0 && a >= 0.95 * d) full++;
  }
  const perStream = decodedTotal / Math.max(1, mounts.length);
  console.log(
    `  served in full: ${full} of ${mounts.length} streams (analysed >= 95 % of decoded); capacity at ${perStream.toFixed(1)} fps a stream: ` +
      `${(analysedTotal / Math.max(1e-9, perStream)).toFixed(1)} streams (all analysed fps ${analysedTotal.toFixed(1)} ÷ ${perStream.toFixed(1)})`,
  );
  console.log(`  machine: ${cpus().length} CPUs, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}, ${formatShares(cpuShares(cpuAtStart, cpuTimes()))} over the run`);
  console.log(`  latency frame→event: p50 ${(percentile(latencies, 50) * 1000).toFixed(0)} ms, p95 ${(percentile(latencies, 95) * 1000).toFixed(0)} ms (n=${latencies.length})`);
  console.log(`  RSS MB: first ${rssSeries[0]?.toFixed(0)}, max ${Math.max(...rssSeries).toFixed(0)}, last ${rssSeries[rssSeries.length - 1]?.toFixed(0)}`);
  if (count) console.log(`  model stage: ${count} calls, mean batch ${((sum ?? 0) / count).toFixed(2)}`);
  console.log(
    `  detector: ${dc.frames} frames in ${dc.calls} calls (${(dc.frames / Math.max(1, dc.calls)).toFixed(2)} a call); ${dc.mosaicFrames} frames shared a mosaic call, ${dc.mosaicRetries} went again alone`,
  );
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
