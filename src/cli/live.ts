// `cafe-stream watch <rtsp-url>` (one camera, a live timeline on stdout) and `cafe-stream serve --config
// cameras.yaml` (many cameras as a long-running process with HTTP /healthz, /metrics and stream control).
// Both run the same LiveRunner; `watch` is `serve` with one stream built from flags.
//
// Streams change without a restart in two ways: SIGHUP re-reads the config file and applies the `streams`
// section (added ids start, removed ids stop, changed entries restart, the rest are untouched), and the HTTP
// endpoints POST /streams and DELETE /streams/:id. Streams added over HTTP are not written back to the file,
// so a later SIGHUP makes the running set match the file again.
//
// Shutdown: SIGTERM/SIGINT stop ingest (every ffmpeg killed), drain the pipeline (each track gets its
// track.end, each stream its stream.end), flush and close the sinks, close HTTP, exit 0. If that takes longer
// than `shutdownSeconds`, the process exits 1 regardless; a second signal forces it at once.
import { Command, Option } from 'commander';
import type { Logger } from 'pino';
import { loadLiveConfig, parseLiveConfig, pipelineOptionsOf, type LiveConfig, type StreamConfig } from '../config.js';
import { CafeStreamError, ConfigError, errorLine } from '../errors.js';
import { LiveMetrics } from '../http/metrics.js';
import { resolveKafkaSecurity } from '../kafka/security.js';
import { createLogger } from '../log.js';
import { LiveHttpServer, type StreamControl } from '../http/server.js';
import { activeFfmpegPids, redactUrl } from '../ingest/rtsp-source.js';
import { loadFaceDetectorThread } from '../model/detector-thread.js';
import { loadExpressionModelThreads } from '../model/model-threads.js';
import { LiveRunner } from '../live/live-runner.js';
import { within } from '../kafka/group-member.js';
import { createJsonlSink } from '../sinks/jsonl-sink.js';
import { createKafkaSink } from '../sinks/kafka-sink.js';
import { createWsSink } from '../sinks/ws-sink.js';
import type { PipelineOptionsInput } from '../pipeline/options.js';
import type { DetectorPort, ExpressionModelPort } from '../pipeline/ports.js';
import type { Sink, TimelineEvent } from '../types.js';
import { dashboardDir } from '../views/dashboard-static.js';
import { exitCodeFor } from './exit-codes.js';
import { defaultModelsDir } from './paths.js';
import { LiveTimelinePrinter } from './live-timeline.js';
import { modelThreadCount, positiveNumber } from './arg-parsers.js';

export function register(program: Command): void {
  program
    .command('serve')
    .description('run many RTSP cameras as a long-running process (HTTP /healthz, /metrics, stream control); see docs/live.md')
    .requiredOption('-c, --config <file>', 'cameras.yaml (see examples/cameras.yaml)')
    .option('--check', 'validate the config and exit')
    .action(async (opts: { config: string; check?: boolean }) => {
      const config = await loadLiveConfig(opts.config).catch(exitOnError);
      if (opts.check) {
        process.stdout.write(`${opts.config}: ok (${config.streams.length} streams)\n`);
        return;
      }
      await runLive(config, { configPath: opts.config });
    });

  program
    .command('watch')
    .description('watch one RTSP camera and print a live expression timeline on stdout')
    .argument('<rtsp-url>', 'rtsp:// or rtsps:// URL')
    .option('--id <id>', 'stream id in events', 'cam')
    .addOption(new Option('--transport <t>', 'RTSP transport').choices(['tcp', 'udp']).default('tcp'))
    .option('--sample-fps <n>', 'analyse at most n frames per second', positiveNumber)
    .option('--stall-seconds <s>', 'reconnect after this long without a frame', positiveNumber, 5)
    .addOption(new Option('--device <d>', 'model execution provider').choices(['cpu', 'cuda', 'webgpu', 'auto']).default('cpu'))
    .option('--models <dir>', 'models folder', defaultModelsDir())
    .option('--model-threads <n>', 'on the CPU: threads that read batches, each with its own session (default min(2, cores)); 0: on the main thread', modelThreadCount)
    .addOption(new Option('--detector <model>', "face detector: 'full' range (faces up to ~5 m) or 'short' (~2 m, faster)").choices(['short', 'full']).default('full'))
    .addOption(new Option('--detector-runtime <r>', "the detector's runtime: onnx (onnxruntime, ~5× faster per call) or tfjs (@tensorflow-models/face-detection on tfjs-wasm); the same weights").choices(['onnx', 'tfjs']).default('onnx'))
    .option('--tile', 'small faces in wide frames (a classroom): scan native-resolution tiles every 2 s, look again around tracked faces in between')
    .option('--out <file>', 'also append every event as JSONL to this file')
    .option('--json', 'print events as JSONL on stdout instead of the human-readable timeline')
    .option('--http <host:port>', 'serve the dashboard (/), /healthz and /metrics here (off by default)')
    .action(async (url: string, opts: WatchOptions) => {
      const config = (() => {
        try {
          const [host, port] = opts.http === undefined ? ['127.0.0.1', undefined] : splitHostPort(opts.http);
          return parseLiveConfig(
            {
              streams: [{ id: opts.id, url, transport: opts.transport, stallSeconds: opts.stallSeconds, ...(opts.sampleFps ? { sampleFps: opts.sampleFps } : {}) }],
              device: opts.device,
              models: opts.models,
              ...(opts.modelThreads === undefined ? {} : { modelThreads: opts.modelThreads }),
              detector: { model: opts.detector, runtime: opts.detectorRuntime, tile: opts.tile === true },
              // with --http, the dashboard at / needs the WebSocket sink on the same server
              sinks: { ...(opts.out === undefined ? {} : { jsonl: { path: opts.out } }), ...(opts.http === undefined ? {} : { ws: { path: '/ws' } }) },
              http: { host, port: port ?? 0 },
            },
            'watch',
          );
        } catch (err) {
          return exitOnError(err);
        }
      })();
      const printer = new LiveTimelinePrinter();
      await runLive(config, {
        http: opts.http !== undefined,
        onEvent: opts.json ? (e) => process.stdout.write(`${JSON.stringify(e)}\n`) : (e) => printer.print(e),
      });
    });
}

interface WatchOptions {
  id: string;
  transport: 'tcp' | 'udp';
  sampleFps?: number;
  stallSeconds: number;
  device: LiveConfig['device'];
  models: string;
  modelThreads?: number;
  detector: 'full' | 'short';
  detectorRuntime: 'onnx' | 'tfjs';
  tile?: boolean;
  out?: string;
  json?: boolean;
  http?: string;
}

/** Something that drives the runner's streams from elsewhere (a worker's group membership). */
export interface LiveAttachment {
  /** fields added to /healthz. */
  health(): Record<string, unknown>;
  /** first at shutdown, before the runner closes. */
  close(): Promise<void>;
}

export interface AttachContext {
  log: Logger;
  metrics: LiveMetrics;
  /** the models the runner uses, loaded once per process (a worker's file jobs share them). */
  detector: DetectorPort;
  model: ExpressionModelPort;
  options: PipelineOptionsInput;
}

export interface RunLiveOptions {
  /** SIGHUP re-reads this file. */
  configPath?: string;
  /** started once the runner is ready (the config's own streams are started first). */
  attach?: (runner: LiveRunner, ctx: AttachContext) => Promise<LiveAttachment>;
  /** extra headers on every Kafka message of the events sink. */
  kafkaHeaders?: Record<string, string>;
  /** start the HTTP server (serve: always). */
  http?: boolean;
  onEvent?: (event: TimelineEvent) => void;
}

/** How long a sink whose broker is unreachable gets to deliver at shutdown. */
const SINK_AWAY_CLOSE_MS = 2_000;

function defaultStaticDir(): string | undefined {
  try {
    return dashboardDir();
  } catch {
    return undefined;
  }
}

function splitHostPort(v: string): [string, number] {
  const m = /^(.+):(\d{1,5})$/.exec(v);
  if (m === null) throw new ConfigError('http', `--http wants host:port, got ${JSON.stringify(v)}`);
  return [m[1]!, Number(m[2])];
}

function exitOnError(err: unknown): never {
  process.stderr.write(`cafe-stream: ${errorLine(err)}\n`);
  process.exit(exitCodeFor(err));
}

/** The sinks the config asks for; the WebSocket sink rides on the HTTP server. */
async function buildSinks(cfg: LiveConfig['sinks'], http: LiveHttpServer | undefined, log: Logger, kafkaHeaders?: Record<string, string>): Promise<Sink[]> {
  const sinks: Sink[] = [];
  if (cfg.jsonl !== undefined) sinks.push(await createJsonlSink({ path: cfg.jsonl.path }));
  if (cfg.kafka !== undefined) {
    const { tls, sasl } = cfg.kafka;
    const security = resolveKafkaSecurity({ ...(tls === undefined ? {} : { tls }), ...(sasl === undefined ? {} : { sasl }) });
    sinks.push(await createKafkaSink({ brokers: cfg.kafka.brokers, topic: cfg.kafka.topic, log, security, ...(kafkaHeaders === undefined ? {} : { headers: kafkaHeaders }) }));
  }
  if (cfg.ws !== undefined) {
    if (http === undefined) throw new ConfigError('sinks.ws', 'sinks.ws: the WebSocket sink needs the HTTP server');
    sinks.push(await createWsSink({ server: http.server, path: cfg.ws.path, log, ...(cfg.ws.token === undefined ? {} : { token: cfg.ws.token }) }));
  }
  log.info({ sinks: sinks.map((s) => s.name) }, 'sinks ready');
  return sinks;
}

/** Runs until SIGTERM/SIGINT (or a sink failure); then shuts down within `shutdownSeconds` and exits. */
export async function runLive(config: LiveConfig, opts: RunLiveOptions = {}): Promise<void> {
  const log = createLogger('cafe-stream');
  const metrics = new LiveMetrics();
  let runner: LiveRunner | undefined;
  let attachment: LiveAttachment | undefined;
  const control: StreamControl = {
    list: () => runner?.list() ?? [],
    add: (body) => (runner ? runner.add(body) : Promise.reject(new ConfigError('streams', 'not ready'))),
    remove: (id) => runner?.remove(id) ?? Promise.resolve(false),
  };
  const wantHttp = opts.http ?? true;
  // the dashboard (web/dashboard) is the default static folder; a config can point elsewhere
  const staticDir = config.http.staticDir ?? defaultStaticDir();
  const http = wantHttp
    ? new LiveHttpServer({
        metrics,
        streams: control,
        log,
        control: config.http.control,
        ...(staticDir === undefined ? {} : { staticDir }),
        health: () => attachment?.health() ?? {},
      })
    : undefined;

  let sinks: Sink[] = [];
  let detector: Awaited<ReturnType<typeof loadFaceDetectorThread>> | undefined;
  try {
    if (http !== undefined) {
      const addr = await http.listen(config.http.host, config.http.port);
      log.info({ url: `http://${addr.address}:${addr.port}` }, 'http listening');
    }
    sinks = await buildSinks(config.sinks, http, log, opts.kafkaHeaders);
    // its own thread: onnxruntime-node runs the model stage synchronously on the main thread, so a detector there
    // never overlaps it (BENCHMARKS.md, issue 11: 4-camera p95 2.1x the 1-camera figure on the main thread, 1.23x here)
    detector = await loadFaceDetectorThread({ model: config.detector.model, runtime: config.detector.runtime, mosaic: config.detector.mosaic, ...(config.detector.tile ? { tile: true } : {}) });
    const model = await loadExpressionModelThreads({ modelsDir: config.models, device: config.device, precision: config.precision, ...(config.modelThreads === undefined ? {} : { modelThreads: config.modelThreads }), log: (m: string) => log.info(m) });
    log.info({ detector: detector.name, provider: model.provider }, 'models loaded');
    metrics.setDetectorCounters(detector.counts.bind(detector));
    runner = new LiveRunner({
      detector,
      model,
      sinks,
      options: pipelineOptionsOf(config),
      reconnect: config.reconnect,
      metrics,
      log,
      ...(opts.onEvent === undefined ? {} : { onEvent: opts.onEvent }),
    });
    for (const s of config.streams) runner.start(s);
    if (opts.attach !== undefined) attachment = await opts.attach(runner, { log, metrics, detector, model, options: pipelineOptionsOf(config) });
  } catch (err) {
    log.fatal({ err: errorLine(err) }, 'could not start');
    await http?.close();
    for (const s of sinks) await s.close().catch(() => undefined);
    exitOnError(err);
  }
  const live = runner;

  // ---- reload: SIGHUP ----
  let reloading = Promise.resolve();
  const onHup = (): void => {
    if (opts.configPath === undefined) {
      log.warn('SIGHUP: no config file to reload');
      return;
    }
    const path = opts.configPath;
    reloading = reloading.then(async () => {
      try {
        const next = await loadLiveConfig(path);
        const changed = Object.keys(next).filter(
          (k) => k !== 'streams' && JSON.stringify(next[k as keyof LiveConfig]) !== JSON.stringify(config[k as keyof LiveConfig]),
        );
        if (changed.length > 0) log.warn({ sections: changed }, 'SIGHUP: only `streams` is applied live; restart for the rest');
        const r = await live.reload(next.streams as StreamConfig[]);
        log.info(r, 'SIGHUP: streams reloaded');
      } catch (err) {
        // a bad edit must not take the running cameras down: keep the current set
        log.error({ err: errorLine(err), key: err instanceof ConfigError ? err.key : undefined }, 'SIGHUP: config rejected, nothing changed');
      }
    });
  };
  process.on('SIGHUP', onHup);

  // ---- shutdown: SIGTERM / SIGINT / a sink failure ----
  let stopping = false;
  const shutdown = async (why: string, code: number): Promise<void> => {
    if (stopping) {
      log.warn({ why }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    const stopStarted = Date.now();
    log.info({ why, boundSeconds: config.shutdownSeconds }, 'shutting down');
    const force = setTimeout(() => {
      log.error({ ffmpeg: activeFfmpegPids() }, `shutdown took over ${config.shutdownSeconds} s: forcing exit`);
      for (const pid of activeFfmpegPids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      process.exit(1);
    }, config.shutdownSeconds * 1000);
    force.unref();
    try {
      await reloading;
      await attachment?.close();
      await live.close();
      for (const s of sinks) {
        // a Kafka sink whose broker is away would wait out the whole bound for it: a short try, then say what is lost
        const away = (s.stats() as { connected?: boolean }).connected === false;
        const budget = away ? SINK_AWAY_CLOSE_MS : Math.max(1_000, config.shutdownSeconds * 1000 - (Date.now() - stopStarted) - 1_000);
        if (!(await within(s.close(), budget))) {
          log.error({ sink: s.name, undelivered: s.stats().buffered, waitedMs: budget }, `${s.name}: events undelivered at shutdown${away ? ' (broker unreachable)' : ''}`);
          code = code || 8;
        }
      }
      await http?.close();
      detector?.close();
      log.info({ ffmpeg: activeFfmpegPids().length }, 'stopped cleanly');
    } catch (err) {
      log.error({ err: errorLine(err) }, 'error during shutdown');
      code = code || 1;
    }
    process.exit(code);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM', 0));
  process.on('SIGINT', () => void shutdown('SIGINT', 0));
  void live.failed.then((err) => {
    log.fatal({ err: errorLine(err), code: err instanceof CafeStreamError ? err.code : undefined }, 'a sink failed');
    void shutdown('sink failure', 1);
  });
  log.info({ streams: config.streams.map((s) => ({ id: s.id, url: redactUrl(s.url), enabled: s.enabled })) }, 'serving');
  // keep running: the signal handlers end the process
  await new Promise<never>(() => undefined);
}
