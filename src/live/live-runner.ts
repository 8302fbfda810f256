// Many live cameras on one long-lived pipeline (createPipeline in run.ts: one shared, batched model stage).
// Streams are added and removed while it runs (config reload, HTTP), each source's online/offline changes
// become `stream.online` / `stream.offline` timeline events on the same sinks, and everything is counted for
// /metrics and /healthz. The pipeline itself is not changed: metering wraps the model port and uses the
// pipeline's own progress/event/batch-stats hooks.
import type { Logger } from 'pino';
import { ConfigError, errorLine } from '../errors.js';
import type { LiveMetrics } from '../http/metrics.js';
import type { StreamControl, StreamView } from '../http/server.js';
import { AdmissionGate, LIVE_FRAMES_IN_FLIGHT } from '../ingest/admission.js';
import { createRtspSource, redactUrl, type RtspBackoff, type RtspSource, type SourceStatus } from '../ingest/rtsp-source.js';
import { parseStreamConfig, type StreamConfig } from '../config.js';
import type { Sink, SpellReplaces, StreamOfflineEvent, StreamOnlineEvent, TimelineEvent } from '../types.js';
import { eventBase } from '../pipeline/events.js';
import type { PipelineOptionsInput } from '../pipeline/options.js';
import type { DetectorPort, ExpressionModelPort } from '../pipeline/ports.js';
import { createPipeline, type Pipeline, type StreamResult } from '../pipeline/run.js';

export interface LiveRunnerParams {
  detector: DetectorPort;
  model: ExpressionModelPort;
  sinks: Sink[];
  options?: PipelineOptionsInput;
  reconnect?: Partial<RtspBackoff>;
  metrics: LiveMetrics;
  log: Logger;
  /** how a stream entry becomes a source; tests and the soak bench may pass their own. */
  createSource?: (cfg: StreamConfig) => RtspSource;
  /** every event that reached the sinks (pipeline events and stream.online/offline). */
  onEvent?: (event: TimelineEvent) => void;
  /** frames of all cameras together inside the pipeline at once (admission.ts); default LIVE_FRAMES_IN_FLIGHT (8). */
  maxFramesInFlight?: number;
}

interface LiveStream {
  cfg: StreamConfig;
  source: RtspSource;
  done: Promise<StreamResult>;
  faces: number;
  reason?: string;
  ended?: StreamResult;
}

export interface ReloadResult {
  added: string[];
  removed: string[];
  restarted: string[];
}

export class LiveRunner implements StreamControl {
  readonly #p: LiveRunnerParams;
  readonly #pipeline: Pipeline;
  readonly #streams = new Map<string, LiveStream>();
  readonly #disabled = new Map<string, StreamConfig>();
  /** status events are written in order, one at a time. */
  #statusChain: Promise<void> = Promise.resolve();
  #closing = false;
  /** one detector and one model stage serve every camera: frames are admitted against one shared bound. */
  readonly #gate: AdmissionGate;

  constructor(params: LiveRunnerParams) {
    this.#p = params;
    this.#gate = new AdmissionGate(params.maxFramesInFlight ?? LIVE_FRAMES_IN_FLIGHT);
    const { metrics } = params;
    const model = params.model;
    const metered: ExpressionModelPort = {
      cropSize: model.cropSize,
      ...(model.provider === undefined ? {} : { provider: model.provider }),
      infer: async (crops) => {
        const started = performance.now();
        try {
          return await model.infer(crops);
        } finally {
          metrics.batchSize.observe(crops.length);
          metrics.modelLatency.observe((performance.now() - started) / 1000);
        }
      },
    };
    metrics.addSinks(params.sinks);
    this.#pipeline = createPipeline({
      detector: params.detector,
      model: metered,
      sinks: params.sinks,
      ...(params.options === undefined ? {} : { options: params.options }),
      onProgress: (u) => {
        metrics.frameAnalysed(u.streamId, u.faces, u.pts);
        const s = this.#streams.get(u.streamId);
        if (s !== undefined) s.faces += u.faces;
      },
      onEvent: (e) => {
        metrics.events.inc({ stream: e.streamId, type: e.type });
        params.onEvent?.(e);
      },
      onBatchStats: (s) => {
        metrics.queueDepth.set(s.queued);
        metrics.inFlight.set(s.inFlight);
      },
    });
    const pipeline = this.#pipeline;
    metrics.setCropCounters(() => pipeline.stats());
  }

  /** Resolves when a sink fails (nothing can be delivered any more); never otherwise. */
  get failed(): Promise<unknown> {
    return this.#pipeline.failed;
  }

  /**
   * Starts one stream (or records it as disabled). Throws ConfigError if the id is taken. `replaces`: a worker
   * taking the camera over from another; its stream.start says so.
   */
  start(cfg: StreamConfig, opts: { replaces?: SpellReplaces } = {}): StreamView {
    if (this.#closing) throw new ConfigError('streams', 'shutting down: no new streams');
    if (this.#streams.has(cfg.id) || this.#disabled.has(cfg.id)) throw new ConfigError('id', `stream "${cfg.id}" already exists`);
    if (!cfg.enabled) {
      this.#disabled.set(cfg.id, cfg);
      this.#p.log.info({ stream: cfg.id }, 'stream disabled in config: not connecting');
      return this.#view(cfg.id)!;
    }
    const created = (this.#p.createSource ?? this.#defaultSource)(cfg);
    const replaces = opts.replaces;
    const source: RtspSource = replaces === undefined ? created : { ...created, info: async () => ({ ...(await created.info()), replaces }) };
    const entry: LiveStream = { cfg, source, faces: 0, done: Promise.resolve(undefined as unknown as StreamResult) };
    this.#streams.set(cfg.id, entry);
    this.#p.metrics.addStream(cfg.id, {
      decoded: () => source.stats().decoded,
      skipped: () => source.stats().skipped,
      reconnects: () => source.stats().reconnects,
      online: () => source.state() === 'online',
      lastFrameAge: () => {
        const t = source.stats().lastFrameAt;
        return t === undefined ? undefined : Math.max(0, Date.now() / 1000 - t);
      },
    });
    source.events$.subscribe((st) => this.#onStatus(entry, st));
    entry.done = this.#pipeline.add(source).then((result) => {
      entry.ended = result;
      if (result.reason === 'error' && !this.#closing && this.#streams.get(cfg.id) === entry) {
        this.#p.log.error({ stream: cfg.id, err: errorLine(result.error) }, 'stream ended with an error');
      }
      return result;
    });
    this.#p.log.info({ stream: cfg.id, url: redactUrl(cfg.url), transport: cfg.transport }, 'stream started');
    return this.#view(cfg.id)!;
  }

  /**
   * Stops a stream: ingest killed, its tracks closed and its stream.end written. False if unknown. With a
   * reason (a worker handing the camera back to its group) the open tracks end with it instead of stream.end.
   */
  async remove(id: string, trackEndReason?: 'reassigned'): Promise<boolean> {
    if (this.#disabled.delete(id)) return true;
    const entry = this.#streams.get(id);
    if (entry === undefined) return false;
    this.#streams.delete(id);
    if (trackEndReason !== undefined) this.#pipeline.interrupt(id, trackEndReason);
    this.#pipeline.stop(id);
    await entry.source.close();
    await entry.done;
    this.#p.metrics.removeStream(id);
    this.#p.log.info({ stream: id }, 'stream removed');
    return true;
  }

  // ---- StreamControl (the HTTP endpoints) ----

  list(): StreamView[] {
    const ids = [...this.#streams.keys(), ...this.#disabled.keys()].sort();
    return ids.map((id) => this.#view(id)!);
  }

  async add(body: unknown): Promise<StreamView> {
    return this.start(parseStreamConfig(body));
  }

  /**
   * Make the running set match `streams` (SIGHUP): new ids start, missing ids stop, an entry whose settings
   * changed restarts; unchanged streams are not touched.
   */
  async reload(streams: StreamConfig[]): Promise<ReloadResult> {
    const wanted = new Map(streams.map((s) => [s.id, s]));
    const result: ReloadResult = { added: [], removed: [], restarted: [] };
    const current = new Map<string, StreamConfig>([
      ...[...this.#streams].map(([id, s]) => [id, s.cfg] as const),
      ...this.#disabled,
    ]);
    for (const [id, cfg] of current) {
      const next = wanted.get(id);
      if (next === undefined) {
        await this.remove(id);
        result.removed.push(id);
      } else if (JSON.stringify(next) !== JSON.stringify(cfg)) {
        await this.remove(id);
        this.start(next);
        result.restarted.push(id);
      }
    }
    for (const [id, cfg] of wanted) {
      if (!current.has(id)) {
        this.start(cfg);
        result.added.push(id);
      }
    }
    return result;
  }

  /** Graceful stop: every ffmpeg killed, every stream's tracks closed, the pipeline drained, sinks flushed. */
  async close(): Promise<void> {
    this.#closing = true;
    const entries = [...this.#streams.values()];
    for (const e of entries) this.#pipeline.stop(e.cfg.id);
    await Promise.all(entries.map((e) => e.source.close()));
    await this.#statusChain;
    await this.#pipeline.close();
  }

  #defaultSource = (cfg: StreamConfig): RtspSource => {
    const log = this.#p.log.child({ stream: cfg.id });
    return createRtspSource({
      url: cfg.url,
      streamId: cfg.id,
      transport: cfg.transport,
      stallSeconds: cfg.stallSeconds,
      gate: this.#gate,
      ...(cfg.sampleFps === undefined ? {} : { sampleFps: cfg.sampleFps }),
      ...(cfg.maxWidth === undefined ? {} : { maxWidth: cfg.maxWidth }),
      ...(this.#p.reconnect === undefined ? {} : { backoff: this.#p.reconnect }),
      log: (level, msg, fields) => log[level](fields ?? {}, msg),
    });
  };

  #onStatus(entry: LiveStream, st: SourceStatus): void {
    const log = this.#p.log;
    if (st.state === 'online') {
      entry.reason = undefined;
      log.info({ stream: st.streamId, attempt: st.attempt }, 'stream online');
      this.#writeStatus({ ...eventBase(st.streamId, st.at), type: 'stream.online', attempt: st.attempt } satisfies StreamOnlineEvent);
    } else if (st.state === 'offline') {
      entry.reason = st.reason;
      log.warn({ stream: st.streamId, reason: st.reason, code: st.code, retryIn: st.retryIn }, 'stream offline');
      // a face cannot be followed across an outage: its track ends now, not when the camera returns
      this.#pipeline.interrupt(st.streamId, 'stream-offline');
      this.#writeStatus({
        ...eventBase(st.streamId, st.at),
        type: 'stream.offline',
        reason: st.reason ?? 'unknown',
        retryIn: Math.round((st.retryIn ?? 0) * 1000) / 1000,
      } satisfies StreamOfflineEvent);
    }
  }

  #writeStatus(event: StreamOnlineEvent | StreamOfflineEvent): void {
    this.#statusChain = this.#statusChain.then(async () => {
      try {
        for (const sink of this.#p.sinks) await sink.write(event);
        this.#p.metrics.events.inc({ stream: event.streamId, type: event.type });
        this.#p.onEvent?.(event);
      } catch (err) {
        this.#p.log.error({ stream: event.streamId, err: errorLine(err) }, `could not write ${event.type}`);
      }
    });
  }

  #view(id: string): StreamView | undefined {
    const disabled = this.#disabled.get(id);
    if (disabled !== undefined) {
      return { id, url: redactUrl(disabled.url), state: 'disabled', lastFrameAgeSeconds: null, reconnects: 0, decoded: 0, analysed: 0, skipped: 0, faces: 0 };
    }
    const e = this.#streams.get(id);
    if (e === undefined) return undefined;
    const st = e.source.stats();
    const state = e.ended !== undefined ? 'stopped' : st.state;
    return {
      id,
      url: redactUrl(e.cfg.url),
      state,
      ...(state === 'offline' && e.reason !== undefined ? { reason: e.reason } : {}),
      ...(e.ended?.reason === 'error' ? { reason: errorLine(e.ended.error) } : {}),
      lastFrameAgeSeconds: st.lastFrameAt === undefined ? null : Math.round((Date.now() / 1000 - st.lastFrameAt) * 1000) / 1000,
      reconnects: st.reconnects,
      decoded: st.decoded,
      analysed: this.#p.metrics.analysed(id),
      skipped: st.skipped,
      faces: e.faces,
    };
  }
}
