// Prometheus metrics for `serve`, on one prom-client Registry (no global state: tests make their own).
//
// Counters are fed as things happen (frames analysed, faces, events, model calls). Figures that other objects
// already count (a source's decoded/skipped frames, a sink's stats()) are read at scrape time through collect
// hooks, so there is one source of truth. The *_fps gauges are rates over the last `windowSeconds`, for
// people reading /metrics or /healthz by eye; dashboards should use rate() on the *_total counters.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DetectorCounts, Sink } from '../types.js';

export interface StreamCounters {
  decoded(): number;
  skipped(): number;
  reconnects(): number;
  online(): boolean;
  /** seconds since the newest decoded frame, undefined before the first. */
  lastFrameAge(): number | undefined;
}

export interface LiveMetricsOptions {
  registry?: Registry;
  /** window of the *_fps gauges. */
  windowSeconds?: number;
  /** process_* and nodejs_* metrics (RSS, heap, event loop lag). */
  defaultMetrics?: boolean;
}

const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128];
const MODEL_LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const E2E_LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10];

/** A per-stream sliding window of counter samples, for fps gauges. */
class RateWindow {
  readonly #samples: { t: number; v: number }[];
  readonly #span: number;
  /** `start`: the counter's value when the stream was added, so the first scrape already has a rate. */
  constructor(spanSeconds: number, start: { t: number; v: number }) {
    this.#span = spanSeconds * 1000;
    this.#samples = [start];
  }
  rate(value: number, now = Date.now()): number {
    this.#samples.push({ t: now, v: value });
    while (this.#samples.length > 2 && now - this.#samples[1]!.t >= this.#span) this.#samples.shift();
    const first = this.#samples[0]!;
    const dt = (now - first.t) / 1000;
    return dt > 0 ? Math.max(0, (value - first.v) / dt) : 0;
  }
}

export class LiveMetrics {
  readonly registry: Registry;
  readonly #streams = new Map<string, StreamCounters>();
  readonly #sinks: Sink[] = [];
  readonly #analysed = new Map<string, number>();
  readonly #windows = new Map<string, RateWindow>();
  /** when each stream was (last) added, and its analysed count then. */
  readonly #added = new Map<string, { at: number; analysed: number }>();
  readonly #windowSeconds: number;

  readonly framesAnalysed: Counter<'stream'>;
  readonly faces: Counter<'stream'>;
  readonly events: Counter<'stream' | 'type'>;
  readonly e2eLatency: Histogram<'stream'>;
  readonly batchSize: Histogram;
  readonly modelLatency: Histogram;
  readonly queueDepth: Gauge;
  readonly inFlight: Gauge;

  constructor(opts: LiveMetricsOptions = {}) {
    const registry = (this.registry = opts.registry ?? new Registry());
    this.#windowSeconds = opts.windowSeconds ?? 10;
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
    const streams = this.#streams;

    new Counter({
      name: 'cafe_stream_frames_decoded_total',
      help: 'frames decoded by ffmpeg, before the live policy',
      labelNames: ['stream'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [id, s] of streams) this.inc({ stream: id }, s.decoded());
      },
    });
    this.framesAnalysed = new Counter({
      name: 'cafe_stream_frames_analysed_total',
      help: 'frames that went through detection, the model stage and the timeline',
      labelNames: ['stream'],
      registers: [registry],
    });
    new Counter({
      name: 'cafe_stream_frames_skipped_total',
      help: 'frames dropped by the live policy (newest frame wins) because the pipeline was behind',
      labelNames: ['stream'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [id, s] of streams) this.inc({ stream: id }, s.skipped());
      },
    });
    this.faces = new Counter({
      name: 'cafe_stream_faces_total',
      help: 'face observations (one per face per analysed frame)',
      labelNames: ['stream'],
      registers: [registry],
    });
    this.events = new Counter({
      name: 'cafe_stream_events_total',
      help: 'timeline events accepted by every sink, by type',
      labelNames: ['stream', 'type'],
      registers: [registry],
    });
    for (const [name, help, pick] of [
      ['cafe_stream_decoded_fps', 'decoded frames per second over the window', (id: string, s: StreamCounters) => this.#rate(`d:${id}`, s.decoded())],
      ['cafe_stream_analysed_fps', 'analysed frames per second over the window', (id: string) => this.#rate(`a:${id}`, this.#analysed.get(id) ?? 0)],
      ['cafe_stream_skipped_fps', 'skipped frames per second over the window', (id: string, s: StreamCounters) => this.#rate(`s:${id}`, s.skipped())],
    ] as const) {
      new Gauge({
        name,
        help,
        labelNames: ['stream'],
        registers: [registry],
        collect() {
          this.reset();
          for (const [id, s] of streams) this.set({ stream: id }, pick(id, s));
        },
      });
    }
    new Gauge({
      name: 'cafe_stream_up',
      help: '1 while the stream is online (frames arriving), else 0',
      labelNames: ['stream'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [id, s] of streams) this.set({ stream: id }, s.online() ? 1 : 0);
      },
    });
    new Counter({
      name: 'cafe_stream_reconnects_total',
      help: 'times the stream came back online after being offline',
      labelNames: ['stream'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [id, s] of streams) this.inc({ stream: id }, s.reconnects());
      },
    });
    new Gauge({
      name: 'cafe_stream_last_frame_age_seconds',
      help: 'seconds since the newest decoded frame (absent before the first)',
      labelNames: ['stream'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [id, s] of streams) {
          const age = s.lastFrameAge();
          if (age !== undefined) this.set({ stream: id }, age);
        }
      },
    });
    this.e2eLatency = new Histogram({
      name: 'cafe_stream_latency_seconds',
      help: 'frame wall-clock time to its events accepted by the sinks',
      labelNames: ['stream'],
      buckets: E2E_LATENCY_BUCKETS,
      registers: [registry],
    });
    this.batchSize = new Histogram({ name: 'cafe_model_batch_size', help: 'crops per model call', buckets: BATCH_BUCKETS, registers: [registry] });
    this.modelLatency = new Histogram({
      name: 'cafe_model_latency_seconds',
      help: 'wall time of one model call (encoder + CAFE head)',
      buckets: MODEL_LATENCY_BUCKETS,
      registers: [registry],
    });
    this.queueDepth = new Gauge({ name: 'cafe_model_queue_depth', help: 'crops waiting for a model call', registers: [registry] });
    this.inFlight = new Gauge({ name: 'cafe_model_in_flight', help: 'model calls running', registers: [registry] });
    const crops = (): { crops: number; reused: number } => this.#crops?.() ?? { crops: 0, reused: 0 };
    new Counter({
      name: 'cafe_model_crops_total',
      help: 'face crops that reached the model stage (read, or carried forward unchanged)',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(crops().crops);
      },
    });
    new Counter({
      name: 'cafe_model_crops_reused_total',
      help: "crops of an unchanged face whose track's last probabilities were carried forward instead of a model read",
      registers: [registry],
      collect() {
        this.reset();
        this.inc(crops().reused);
      },
    });
    // one question to the detector (a thread: a message round trip) per scrape, shared by its three counters
    let asking: Promise<DetectorCounts> | undefined;
    const detector = (): Promise<DetectorCounts> =>
      (asking ??= (this.#detector?.() ?? Promise.resolve({ frames: 0, calls: 0, mosaicFrames: 0, mosaicRetries: 0 })).finally(() => (asking = undefined)));
    for (const [name, help, field] of [
      ['cafe_detector_frames_total', 'frames the face detector looked at', 'frames'],
      ['cafe_detector_calls_total', 'face detector model calls (a mosaic of several cameras\' frames is one)', 'calls'],
      ['cafe_detector_mosaic_frames_total', 'frames served by a call shared with other cameras (detector.mosaic)', 'mosaicFrames'],
    ] as const) {
      new Counter({
        name,
        help,
        registers: [registry],
        async collect() {
          const c = await detector();
          this.reset();
          this.inc(c[field]);
        },
      });
    }
    const sinks = this.#sinks;
    for (const [name, help, field] of [
      ['cafe_sink_sent_total', 'events the sink delivered', 'sent'],
      ['cafe_sink_dropped_total', 'events dropped by the sink’s stated overflow policy', 'dropped'],
    ] as const) {
      new Counter({
        name,
        help,
        labelNames: ['sink'],
        registers: [registry],
        collect() {
          this.reset();
          for (const sink of sinks) this.inc({ sink: sink.name }, sink.stats()[field]);
        },
      });
    }
    new Gauge({
      name: 'cafe_sink_buffered',
      help: 'events accepted but not yet delivered',
      labelNames: ['sink'],
      registers: [registry],
      collect() {
        this.reset();
        for (const sink of sinks) this.set({ sink: sink.name }, sink.stats().buffered);
      },
    });
  }

  #crops: (() => { crops: number; reused: number }) | undefined;
  #detector: (() => Promise<DetectorCounts>) | undefined;

  /** Where the detector's counters are read at scrape time (a detector thread answers over its port). */
  setDetectorCounters(read: () => Promise<DetectorCounts>): void {
    this.#detector = read;
  }

  /** Where the crop counters are read at scrape time (the pipeline's stats). */
  setCropCounters(read: () => { crops: number; reused: number }): void {
    this.#crops = read;
  }

  #rate(key: string, value: number): number {
    let w = this.#windows.get(key);
    // a window born at the first scrape read 0 until the next one (issue 20: 0 in most snapshots of a worker,
    // whose cameras were re-added at every rebalance): it starts when the stream was added instead
    const id = key.slice(2);
    const added = this.#added.get(id) ?? { at: Date.now(), analysed: 0 };
    if (w === undefined) this.#windows.set(key, (w = new RateWindow(this.#windowSeconds, { t: added.at, v: key.startsWith('a:') ? added.analysed : 0 })));
    return Math.round(w.rate(value) * 100) / 100;
  }

  addStream(id: string, counters: StreamCounters): void {
    this.#streams.set(id, counters);
    this.#analysed.set(id, this.#analysed.get(id) ?? 0);
    this.#added.set(id, { at: Date.now(), analysed: this.#analysed.get(id)! });
    for (const k of ['d', 'a', 's']) this.#windows.delete(`${k}:${id}`);
  }

  /** A removed stream's labels go away (its *_total history restarts if it is added again). */
  removeStream(id: string): void {
    this.#streams.delete(id);
    this.#analysed.delete(id);
    this.#added.delete(id);
    for (const k of ['d', 'a', 's']) this.#windows.delete(`${k}:${id}`);
    this.framesAnalysed.remove({ stream: id });
    this.faces.remove({ stream: id });
    this.e2eLatency.remove({ stream: id });
  }

  addSinks(sinks: Sink[]): void {
    this.#sinks.push(...sinks);
  }

  /** One frame finished the pipeline. */
  frameAnalysed(streamId: string, faces: number, pts: number): void {
    this.framesAnalysed.inc({ stream: streamId });
    this.#analysed.set(streamId, (this.#analysed.get(streamId) ?? 0) + 1);
    if (faces > 0) this.faces.inc({ stream: streamId }, faces);
    this.e2eLatency.observe({ stream: streamId }, Math.max(0, Date.now() / 1000 - pts));
  }

  analysed(streamId: string): number {
    return this.#analysed.get(streamId) ?? 0;
  }

  /** The fps figures that /healthz shows (same windows as the gauges would use). */
  async text(): Promise<string> {
    return this.registry.metrics();
  }
}
