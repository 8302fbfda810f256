// A live RTSP camera as a FrameSource that stays up: ffmpeg pulls the stream and writes raw RGB24 frames,
// read on a worker thread (rtsp-reader.worker.ts says why), a watchdog notices when frames stop, ffmpeg is
// killed for real (SIGTERM, then SIGKILL: one SIGTERM does not stop ffmpeg blocked in an RTSP read), and the
// source reconnects with jittered exponential backoff (src/retry.ts), reporting online/offline with the
// reason on `events$`. ffmpeg is spawned directly rather than through fluent-ffmpeg: the reader thread owns
// the process and its pipe.
//
// How a connection ends (see shared/notes/offline-facts.md):
//   server killed       → ffmpeg exits 0 at once: for a live source that is a disconnect, never an end.
//   server hung         → ffmpeg blocks (RTCP/keep-alives keep its socket timeout quiet): the stall timer fires.
//   no server / 404     → ffmpeg exits 1 at once: the last stderr line is the reason.
//
// Frame size: parsed from ffmpeg's own stderr ("Output #0 … Stream #0:0: Video: rawvideo …, 512x512"), the
// size after our scale filter, printed before the first frame's bytes. No second RTSP session is opened for a
// probe, and a camera that changes resolution between connections is picked up on reconnect.
//
// Live policy: the newest frame wins. At most `maxPending` frames (default 1) are out in the pipeline (emitted,
// not yet released), and with a shared `gate` (admission.ts) a frame also needs one of the slots all cameras
// share; at most one more is held here; when a newer frame arrives the held one is dropped and counted in
// `skipped()`. The reader thread applies the same rule before that: it keeps only the newest
// complete frame until the main thread takes one. ffmpeg is never paused (a paused RTSP reader falls behind
// the camera for good).
//
// Timestamps: `pts` is the wall-clock Unix time (seconds) at which the frame's last byte reached the reader.

import type { Worker } from 'node:worker_threads';
import { Observable, Subject, type Subscriber } from 'rxjs';
import { ConfigError, IngestError, errorLine, type ErrorCode } from '../errors.js';
import { DEFAULT_RETRY_POLICY, retry, type RetryPolicy } from '../retry.js';
import type { Frame, FrameSource, StreamInfo } from '../types.js';
import type { FromReader, ToReader } from './rtsp-reader-protocol.js';
import type { AdmissionGate } from './admission.js';
import { StallWatchdog } from './watchdog.js';
import { startWorker } from '../worker-module.js';

export type LiveState = 'connecting' | 'online' | 'offline' | 'stopped';

/** A change of a live source's state (transitions only; not every failed attempt). */
export interface SourceStatus {
  streamId: string;
  state: LiveState;
  /** wall-clock Unix seconds of the change. */
  at: number;
  /** online: the attempt within this outage that succeeded, 0 for the first connection. */
  attempt: number;
  /** offline: one line saying why. */
  reason?: string;
  code?: ErrorCode;
  /** offline: seconds until the next attempt. */
  retryIn?: number;
}

export interface RtspSourceStats {
  state: LiveState;
  /** frames decoded by ffmpeg (before the live policy). */
  decoded: number;
  /** frames handed to the pipeline. */
  delivered: number;
  skipped: number;
  /** times the stream came back online after being offline. */
  reconnects: number;
  /** connection attempts, all told. */
  attempts: number;
  /** wall-clock Unix seconds of the newest decoded frame. */
  lastFrameAt: number | undefined;
  /** the current ffmpeg process, if any. */
  pid: number | undefined;
}

export interface RtspBackoff {
  initialDelayMs: number;
  maxDelayMs: number;
  factor: number;
  jitter: number;
}

export interface RtspSourceOptions {
  url: string;
  streamId: string;
  transport?: 'tcp' | 'udp';
  /** thin to at most this many frames per second (ffmpeg `fps` filter); default: every frame. */
  sampleFps?: number;
  /** scale down (aspect kept) when the camera is wider than this. */
  maxWidth?: number;
  /** no frame for this long on an open connection = stalled; default 5 s. */
  stallSeconds?: number;
  /** how long a new connection may take to deliver its first frame; default 10 s. */
  connectSeconds?: number;
  /** ffmpeg's socket I/O timeout (`-timeout`, µs on the command line); default 5 s. */
  ioTimeoutSeconds?: number;
  /** frames out in the pipeline before newer ones replace the held one; default 1 (newest frame wins). */
  maxPending?: number;
  /** a bound on frames in flight shared with other sources (admission.ts); a frame also needs a slot there. */
  gate?: AdmissionGate;
  /** reconnect backoff; the cap keeps "back within 10 s of the server's return" true. */
  backoff?: Partial<RtspBackoff>;
  /** SIGTERM → SIGKILL grace, default 1000 ms. */
  killGraceMs?: number;
  /** receives one line per connection attempt / failure (e.g. a pino logger's bound method). */
  log?: (level: 'info' | 'warn' | 'debug', msg: string, fields?: Record<string, unknown>) => void;
  /** injectable for tests. */
  random?: () => number;
}

export interface RtspSource extends FrameSource {
  readonly events$: Observable<SourceStatus>;
  state(): LiveState;
  stats(): RtspSourceStats;
  /** stop reconnecting, kill ffmpeg and wait for it, then complete the frame stream. */
  close(): Promise<void>;
}

export const DEFAULT_RTSP_BACKOFF: Readonly<RtspBackoff> = { initialDelayMs: 500, maxDelayMs: 4000, factor: 2, jitter: 0.3 };

/** Every ffmpeg this module started and that has not exited yet (tests and shutdown check it). */
const livePids = new Set<number>();
export function activeFfmpegPids(): number[] {
  return [...livePids];
}

const STDERR_TAIL = 12;

/** `rtsp://user:pass@host/x` → `rtsp://host/x`, for logs and StreamInfo. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//');
  }
}

export function createRtspSource(opts: RtspSourceOptions): RtspSource {
  const o = validate(opts);
  const status$ = new Subject<SourceStatus>();
  const outstanding = new Set<Frame>();
  const source = redactUrl(o.url);
  let state: LiveState = 'connecting';
  let decoded = 0;
  let delivered = 0;
  let skipped = 0;
  let reconnects = 0;
  let attempts = 0;
  let frameId = 0;
  let lastFrameAt: number | undefined;
  let held: Frame | undefined;
  let subscriber: Subscriber<Frame> | undefined;
  let current: Connection | undefined;
  /** one reader thread per source, reused across connections (starting one costs up to a second under tsx). */
  let reader: ReaderWorker | undefined;
  let abort: AbortController | undefined;
  let loopDone: Promise<void> | undefined;
  let loopError: unknown;
  let closed = false;
  let streamInfo: StreamInfo | undefined;
  const infoWaiters: { resolve: (s: StreamInfo) => void; reject: (e: unknown) => void }[] = [];

  const log = o.log ?? (() => undefined);

  const setState = (next: LiveState, extra: Omit<SourceStatus, 'streamId' | 'state' | 'at' | 'attempt'> & { attempt?: number } = {}): void => {
    // transitions only: one offline event per outage, however many attempts it takes (those are logged)
    if (next === state) return;
    if (next === 'online' && state === 'offline') reconnects++;
    state = next;
    status$.next({ streamId: o.streamId, state: next, at: Date.now() / 1000, attempt: extra.attempt ?? 0, ...extra });
  };

  const deliver = (frame: Frame): void => {
    outstanding.add(frame);
    delivered++;
    subscriber?.next(frame);
  };

  // Frames holding a slot of the shared gate; each gives it back once, on release or close.
  const slotted = new Set<Frame>();
  /** Room for one more frame: under maxPending, and a slot of the shared gate when there is one. */
  const admit = (frame: Frame): boolean => {
    if (outstanding.size >= o.maxPending) return false;
    if (o.gate === undefined) return true;
    if (!o.gate.tryEnter()) {
      o.gate.wait(onSlot);
      return false;
    }
    slotted.add(frame);
    return true;
  };
  /** The gate freed a slot: the held frame (the newest) goes now. */
  const onSlot = (): boolean => {
    if (held === undefined || subscriber === undefined || closed) return false;
    const next = held;
    if (!admit(next)) return false;
    held = undefined;
    next.frameId = frameId++;
    deliver(next);
    return true;
  };

  /** A complete frame came from ffmpeg: hand it on, or hold it if the pipeline is behind. */
  const onFrame = (data: Buffer, width: number, height: number, at: number, droppedInReader: number): void => {
    decoded += 1 + droppedInReader;
    skipped += droppedInReader;
    lastFrameAt = at;
    const frame: Frame = { streamId: o.streamId, frameId: -1, pts: at, width, height, data };
    // Before anyone subscribes (info() started the connection), keep only the newest frame.
    if (subscriber === undefined) {
      held = frame;
      return;
    }
    if (held !== undefined) skipped++;
    held = undefined;
    if (admit(frame)) {
      frame.frameId = frameId++;
      deliver(frame);
      return;
    }
    held = frame;
  };

  const release = (frame: Frame): void => {
    if (!outstanding.delete(frame)) return; // unknown or released twice
    if (slotted.delete(frame)) o.gate?.leave();
    if (held !== undefined && admit(held)) {
      const next = held;
      held = undefined;
      next.frameId = frameId++;
      deliver(next);
    }
  };

  const onSize = (width: number, height: number, fps: number | undefined): void => {
    streamInfo = { streamId: o.streamId, source, kind: 'rtsp', clock: 'wall', width, height, ...(fps === undefined ? {} : { fps }) };
    for (const w of infoWaiters.splice(0)) w.resolve(streamInfo);
  };

  const policy: Partial<RetryPolicy> = {
    ...DEFAULT_RETRY_POLICY,
    ...o.backoff,
    maxAttempts: Number.POSITIVE_INFINITY,
    ...(o.random === undefined ? {} : { random: o.random }),
    isRetriable: (e) => e instanceof IngestError && e.retriable,
  };

  /** Connect, stream until the connection dies, repeat; backoff only across failed attempts. */
  const runLoop = async (signal: AbortSignal): Promise<void> => {
    let first = true;
    while (!signal.aborted) {
      let outage = 0;
      try {
        const ended = await retry({
          ...policy,
          signal,
          onRetry: ({ error, attempt, delayMs }) => {
            const reason = errorLine(error);
            log('warn', `stream ${o.streamId}: attempt ${attempt} failed: ${reason}; retry in ${delayMs} ms`);
            setState('offline', { reason, code: codeOf(error), retryIn: delayMs / 1000 });
          },
        })(async (attempt) => {
          outage = attempt - 1;
          attempts++;
          if (state !== 'offline') setState('connecting');
          log('debug', `stream ${o.streamId}: connecting (attempt ${attempt})`, { url: source });
          reader ??= new ReaderWorker();
          const conn = new Connection(o, reader, {
            onFirstFrame: () => {
              setState('online', { attempt: first ? 0 : Math.max(1, outage + 1) });
              first = false;
            },
            onFrame,
            onSize,
          });
          current = conn;
          const result = await conn.run();
          current = undefined;
          if (signal.aborted) return result;
          // A connection that never produced a frame is a failed attempt: back off before the next one.
          if (!result.hadFrames) throw result.error;
          return result;
        });
        if (signal.aborted) break;
        // It was online and then dropped: report, and come back after the shortest delay.
        const retryIn = policy.initialDelayMs ?? DEFAULT_RTSP_BACKOFF.initialDelayMs;
        log('warn', `stream ${o.streamId}: offline: ${errorLine(ended.error)}`);
        setState('offline', { reason: errorLine(ended.error), code: ended.error.code, retryIn: retryIn / 1000 });
        await sleep(retryIn, signal);
      } catch (err) {
        if (signal.aborted) break;
        throw err; // not retriable: a bug, surfaced to the subscriber
      }
    }
  };

  /** The connection loop runs from the first info() or frames() call until close() or unsubscribe. */
  const ensureStarted = (): void => {
    if (closed || (abort !== undefined && !abort.signal.aborted)) return;
    const ac = new AbortController();
    abort = ac;
    loopError = undefined;
    loopDone = runLoop(ac.signal).catch((err: unknown) => {
      loopError = err;
      subscriber?.error(err);
    });
  };

  const stop = async (): Promise<void> => {
    abort?.abort(new Error('closed'));
    await current?.stop();
    await loopDone;
    held = undefined;
    const r = reader;
    reader = undefined;
    await r?.terminate();
  };

  return {
    streamId: o.streamId,
    events$: status$.asObservable(),
    state: () => state,
    skipped: () => skipped,
    stats: () => ({ state, decoded, delivered, skipped, reconnects, attempts, lastFrameAt, pid: current?.pid }),
    // The size comes from the first connection, so asking for it connects (the pipeline asks before it
    // subscribes to frames). A source closed before it ever connected rejects: there is no size to give.
    info: () => {
      if (streamInfo !== undefined) return Promise.resolve(streamInfo);
      if (closed) return Promise.reject(notConnected());
      ensureStarted();
      return new Promise<StreamInfo>((resolve, reject) => infoWaiters.push({ resolve, reject }));
    },
    release,
    frames: () =>
      new Observable<Frame>((sub) => {
        if (closed) {
          sub.complete();
          return;
        }
        if (subscriber !== undefined) {
          sub.error(new IngestError('CS_ERR_FFMPEG_EXIT', source, `stream ${o.streamId} already has a subscriber`));
          return;
        }
        subscriber = sub;
        if (loopError !== undefined) {
          sub.error(loopError);
          return;
        }
        ensureStarted();
        // a frame that arrived before the subscription is the newest one: deliver it first
        if (held !== undefined && admit(held)) {
          const first = held;
          held = undefined;
          first.frameId = frameId++;
          deliver(first);
        }
        return () => {
          if (subscriber === sub) subscriber = undefined;
          void stop();
        };
      }),
    async close(): Promise<void> {
      closed = true;
      // slots of frames the pipeline has not released yet go back now: other cameras must not wait for them
      o.gate?.cancel(onSlot);
      const slots = slotted.size;
      slotted.clear();
      for (let i = 0; i < slots; i++) o.gate?.leave();
      await stop();
      for (const w of infoWaiters.splice(0)) w.reject(notConnected());
      if (state !== 'stopped') {
        state = 'stopped';
        status$.next({ streamId: o.streamId, state: 'stopped', at: Date.now() / 1000, attempt: 0 });
      }
      const sub = subscriber;
      subscriber = undefined;
      sub?.complete();
      status$.complete();
    },
  };

  function notConnected(): IngestError {
    return new IngestError('CS_ERR_FFMPEG_EXIT', source, `stream ${o.streamId} was closed before it ever connected`);
  }
}

function codeOf(err: unknown): ErrorCode | undefined {
  return err instanceof IngestError ? err.code : undefined;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

type Resolved = Required<Omit<RtspSourceOptions, 'sampleFps' | 'maxWidth' | 'log' | 'random' | 'backoff' | 'gate'>> &
  Pick<RtspSourceOptions, 'sampleFps' | 'maxWidth' | 'log' | 'random' | 'gate'> & { backoff: RtspBackoff };

function validate(opts: RtspSourceOptions): Resolved {
  const bad = (key: string, msg: string): never => {
    throw new ConfigError(key, `${key}: ${msg}`);
  };
  if (!/^rtsps?:\/\//i.test(opts.url)) bad('url', `want an rtsp:// URL, got ${JSON.stringify(redactUrl(opts.url))}`);
  if (!opts.streamId) bad('streamId', 'must not be empty');
  const positive = (key: string, v: number | undefined): void => {
    if (v !== undefined && !(Number.isFinite(v) && v > 0)) bad(key, `must be a positive number, got ${v}`);
  };
  positive('sampleFps', opts.sampleFps);
  positive('maxWidth', opts.maxWidth);
  positive('stallSeconds', opts.stallSeconds);
  positive('connectSeconds', opts.connectSeconds);
  positive('ioTimeoutSeconds', opts.ioTimeoutSeconds);
  const maxPending = opts.maxPending ?? 1;
  if (!Number.isInteger(maxPending) || maxPending < 1) bad('maxPending', `must be an integer >= 1, got ${maxPending}`);
  const transport = opts.transport ?? 'tcp';
  if (transport !== 'tcp' && transport !== 'udp') bad('transport', `must be tcp or udp, got ${String(transport)}`);
  return {
    url: opts.url,
    streamId: opts.streamId,
    transport,
    sampleFps: opts.sampleFps,
    maxWidth: opts.maxWidth,
    stallSeconds: opts.stallSeconds ?? 5,
    connectSeconds: opts.connectSeconds ?? 10,
    ioTimeoutSeconds: opts.ioTimeoutSeconds ?? 5,
    maxPending,
    backoff: { ...DEFAULT_RTSP_BACKOFF, ...opts.backoff },
    killGraceMs: opts.killGraceMs ?? 1000,
    log: opts.log,
    random: opts.random,
    gate: opts.gate,
  };
}

interface ConnectionHooks {
  onFirstFrame(): void;
  onFrame(data: Buffer, width: number, height: number, at: number, droppedInReader: number): void;
  onSize(width: number, height: number, fps: number | undefined): void;
}

interface ConnectionResult {
  hadFrames: boolean;
  error: IngestError;
}

/** The reader thread (rtsp-reader.worker.ts); from .ts sources (tsx, vitest) it loads through tsx's API. */
class ReaderWorker {
  readonly worker: Worker;
  #onMessage: ((msg: FromReader) => void) | undefined;
  #dead: Error | undefined;

  constructor() {
    this.worker = startWorker(import.meta.url, 'rtsp-reader.worker');
    this.worker.unref();
    this.worker.on('message', (msg: FromReader) => this.#onMessage?.(msg));
    this.worker.on('error', (err) => this.#die(err));
    this.worker.on('exit', () => this.#die(new Error('reader thread exited')));
  }

  get dead(): Error | undefined {
    return this.#dead;
  }

  listen(fn: ((msg: FromReader) => void) | undefined): void {
    this.#onMessage = fn;
  }

  send(msg: ToReader): void {
    if (this.#dead === undefined) this.worker.postMessage(msg);
  }

  async terminate(): Promise<void> {
    this.#onMessage = undefined;
    if (this.#dead === undefined) await this.worker.terminate();
  }

  #die(err: Error): void {
    if (this.#dead !== undefined) return;
    this.#dead = err;
    // a connection waiting for `exit` must not wait forever
    this.#onMessage?.({ type: 'exit', code: null, signal: 'READER_GONE', partialBytes: 0 });
  }
}

function ffmpegArgs(o: Resolved): string[] {
  const filters: string[] = [];
  if (o.sampleFps !== undefined) filters.push(`fps=${o.sampleFps}`);
  if (o.maxWidth !== undefined) filters.push(`scale='min(iw,${Math.floor(o.maxWidth)})':-2`);
  return [
    '-nostdin', '-hide_banner', '-nostats', '-loglevel', 'info',
    '-rtsp_transport', o.transport,
    '-timeout', String(Math.round(o.ioTimeoutSeconds * 1e6)),
    // live: do not buffer ahead of the newest packet
    '-fflags', 'nobuffer', '-flags', 'low_delay',
    // no probing: the decoder takes the codec parameters from the SDP or the in-band SPS, and the frame size
    // is read from the output stream (configured at the first decoded frame). Probing half a second still
    // cost 2-3 s to the first frame on a loaded 2-core machine, 1-2 s without (issue 20: camera takeover)
    '-analyzeduration', '0', '-probesize', '32',
    '-i', o.url,
    '-an', '-sn', '-dn',
    ...(filters.length > 0 ? ['-vf', filters.join(',')] : []),
    '-pix_fmt', 'rgb24', '-f', 'rawvideo', 'pipe:1',
  ];
}

/** One ffmpeg process pulling one RTSP session (read on the reader thread), until it exits or is killed. */
class Connection {
  readonly #o: Resolved;
  readonly #reader: ReaderWorker;
  readonly #hooks: ConnectionHooks;
  readonly #stderr: string[] = [];
  #pid: number | undefined;
  #width = 0;
  #height = 0;
  #frames = 0;
  /** why we killed it, if we did. */
  #killedFor: IngestError | undefined;
  #stopping = false;
  #exited: Promise<void>;
  #markExited!: () => void;
  #watchdog: StallWatchdog;
  #settle: ((r: ConnectionResult) => void) | undefined;

  constructor(o: Resolved, reader: ReaderWorker, hooks: ConnectionHooks) {
    this.#o = o;
    this.#reader = reader;
    this.#hooks = hooks;
    this.#exited = new Promise((r) => (this.#markExited = r));
    this.#watchdog = this.#stallTimer(o.connectSeconds, () => `no first frame within ${o.connectSeconds} s`);
  }

  get pid(): number | undefined {
    return this.#pid;
  }

  run(): Promise<ConnectionResult> {
    return new Promise<ConnectionResult>((resolve) => {
      this.#settle = resolve;
      if (this.#reader.dead !== undefined) {
        this.#onExit({ type: 'exit', code: null, signal: 'READER_GONE', partialBytes: 0 });
        return;
      }
      this.#reader.listen((msg) => this.#onMessage(msg));
      this.#reader.send({ type: 'start', ffmpegPath: process.env['FFMPEG_PATH'] ?? 'ffmpeg', args: ffmpegArgs(this.#o) });
      this.#reader.send({ type: 'credit', n: 1 });
      this.#watchdog.start();
    });
  }

  /** Kill ffmpeg for real and wait until it is gone. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#watchdog.stop();
    if (this.#settle === undefined) return;
    this.#reader.send({ type: 'stop', graceMs: this.#o.killGraceMs });
    // Belt and braces: if the reader thread cannot kill it (gone, stuck), the main thread does.
    const fallback = setTimeout(() => {
      if (this.#pid !== undefined) {
        try {
          process.kill(this.#pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }, this.#o.killGraceMs + 2000);
    await this.#exited;
    clearTimeout(fallback);
  }

  #stallTimer(seconds: number, what: (idleMs: number) => string): StallWatchdog {
    return new StallWatchdog({
      timeoutMs: seconds * 1000,
      onStall: (idleMs) => {
        this.#killedFor = new IngestError('CS_ERR_STREAM_STALLED', redactUrl(this.#o.url), `stalled: ${what(idleMs)}`, { retriable: true });
        void this.stop();
      },
    });
  }

  #onMessage(msg: FromReader): void {
    switch (msg.type) {
      case 'pid':
        this.#pid = msg.pid;
        livePids.add(msg.pid);
        if (this.#stopping) this.#reader.send({ type: 'stop', graceMs: this.#o.killGraceMs });
        break;
      case 'stderr':
        this.#stderr.push(msg.line);
        if (this.#stderr.length > STDERR_TAIL) this.#stderr.shift();
        break;
      case 'size':
        this.#width = msg.width;
        this.#height = msg.height;
        this.#hooks.onSize(msg.width, msg.height, this.#o.sampleFps ?? msg.fps);
        break;
      case 'frame':
        // take the next one as soon as this one is handled: the reader keeps only the newest meanwhile
        this.#reader.send({ type: 'credit', n: 1 });
        if (this.#stopping) return;
        this.#frames++;
        if (this.#frames === 1) {
          // from here on the (shorter) stall limit applies
          this.#watchdog.stop();
          this.#watchdog = this.#stallTimer(this.#o.stallSeconds, (idleMs) => `no frame for ${(idleMs / 1000).toFixed(1)} s`);
          this.#watchdog.start();
          this.#hooks.onFirstFrame();
        }
        this.#watchdog.kick();
        this.#hooks.onFrame(Buffer.from(msg.data), this.#width, this.#height, msg.at, msg.dropped);
        break;
      case 'exit':
        this.#onExit(msg);
        break;
    }
  }

  #onExit(msg: Extract<FromReader, { type: 'exit' }>): void {
    this.#watchdog.stop();
    if (this.#pid !== undefined) livePids.delete(this.#pid);
    this.#reader.listen(undefined);
    this.#markExited();
    const settle = this.#settle;
    this.#settle = undefined;
    if (settle === undefined) return;
    const src = redactUrl(this.#o.url);
    let error = this.#killedFor;
    if (error === undefined) {
      const last = this.#lastMeaningfulLine();
      if (msg.signal === 'READER_GONE') {
        error = new IngestError('CS_ERR_FFMPEG_EXIT', src, `reader thread failed: ${this.#reader.dead?.message ?? 'gone'}`, { retriable: true });
      } else if (msg.code === 0) {
        // exit 0 on a live source: the server went away (killed, restarted, or ended the session)
        error = new IngestError('CS_ERR_FFMPEG_EXIT', src, 'disconnected: the server closed the stream', { retriable: true });
      } else {
        const how = msg.signal !== null ? `killed by ${msg.signal}` : `exit ${msg.code}`;
        error = new IngestError('CS_ERR_FFMPEG_EXIT', src, `ffmpeg failed (${how}): ${last ?? 'no output'}`, { retriable: true });
      }
    }
    settle({ hadFrames: this.#frames > 0, error });
  }

  #lastMeaningfulLine(): string | undefined {
    const clean = (l: string): string => l.replace(/^\[[^\]]*@ 0x[0-9a-f]+\]\s*/, '');
    for (let i = this.#stderr.length - 1; i >= 0; i--) {
      const l = this.#stderr[i]!;
      if (/error|refused|not found|failed|invalid|unauthori[sz]ed|timed? ?out|unreachable|denied/i.test(l)) return clean(l);
    }
    const last = this.#stderr[this.#stderr.length - 1];
    return last === undefined ? undefined : clean(last);
  }
}
