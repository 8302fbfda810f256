// A recorded file as a lossless, back-pressured stream of RGB24 frames.
//
// ffmpeg writes raw rgb24 to a pipe; we cut the byte stream into frames of exactly width × height × 3 bytes.
// Losslessness: at most `maxPending` frames may be out in the pipeline (emitted, not yet released). At that
// bound we hold the write callback of the stream ffmpeg's stdout is piped into, so Node stops reading the
// pipe, the pipe fills, and ffmpeg blocks in write(): memory stays bounded whatever the file length, and no
// frame is ever dropped.
//
// Timestamps: ffmpeg's rawvideo output is constant-frame-rate (it duplicates/drops to the stream's rate, or to
// `sampleFps` through `-vf fps=N`), so frame k's media time is exactly k / outputRate seconds from the start.

import { basename } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Writable } from 'node:stream';
import ffmpeg from 'fluent-ffmpeg';
import { Observable } from 'rxjs';
import { ConfigError, IngestError, errorLine } from '../errors.js';
import type { Frame, FrameSource, StreamInfo } from '../types.js';
import { probeFile } from './probe.js';

export interface FileSourceOptions {
  path: string;
  /** defaults to the file's base name. */
  streamId?: string;
  /** decode at most this many frames per second of media time (ffmpeg `fps` filter); default: every frame. */
  sampleFps?: number;
  /** frames emitted but not yet released before ffmpeg is paused; default 8. */
  maxPending?: number;
  /** how long ffmpeg gets to exit on SIGTERM before SIGKILL when the subscriber leaves; default 500 ms. */
  killGraceMs?: number;
  /**
   * write later frames into the buffers of released ones; default false. Only for a consumer that never reads a
   * frame's pixels after releasing it (the pipeline): a 1280×1280 frame is a 4.9 MB buffer, and a fresh one per
   * frame cost its pages and the garbage collector's time on the main thread.
   */
  reuseBuffers?: boolean;
}

/**
 * The frame window `analyze` gives a file source: enough frames out to fill a model batch from a single face,
 * few enough to bound memory (a 1080p frame is 6 MB).
 */
export function framesPendingFor(batchSize: number): number {
  return Math.min(64, Math.max(8, batchSize + 8));
}

/** Rate used when the container states none (rare): frames are resampled to it so pts stay exact. */
const FALLBACK_FPS = 25;
const STDERR_TAIL_LINES = 20;
/** ffmpeg lines that mean the input ends early or is damaged rather than that ffmpeg itself failed. */
const TRUNCATION_MARK = /partial file|corrupt|truncat|moov atom not found|unexpected end|end of file/i;

/**
 * fluent-ffmpeg runs `ffmpeg -formats`, then `ffmpeg -encoders`, before a process's first decode (and caches
 * the answers): ~170 ms between the probe and the first frame. Asked for, both at once, when the first source
 * is made, they run beside the probe. A failure here is not ours to report: the decode's own check repeats it
 * and fails the run with its message.
 */
let capabilitiesAsked = false;
function askCapabilitiesEarly(): void {
  if (capabilitiesAsked) return;
  capabilitiesAsked = true;
  ffmpeg.getAvailableFormats(() => undefined);
  ffmpeg.getAvailableEncoders(() => undefined);
}

export function createFileSource(opts: FileSourceOptions): FrameSource {
  const maxPending = opts.maxPending ?? 8;
  if (!Number.isInteger(maxPending) || maxPending < 1) {
    throw new ConfigError('maxPending', `maxPending must be an integer >= 1, got ${opts.maxPending}`);
  }
  if (opts.sampleFps !== undefined && !(Number.isFinite(opts.sampleFps) && opts.sampleFps > 0)) {
    throw new ConfigError('sampleFps', `sample fps must be a positive number, got ${opts.sampleFps}`);
  }
  const streamId = opts.streamId ?? basename(opts.path);
  askCapabilitiesEarly();
  const killGraceMs = opts.killGraceMs ?? 500;
  let probed: Promise<StreamInfo> | undefined;
  const info = (): Promise<StreamInfo> => (probed ??= probeFile(opts.path, streamId));
  /** frames out in the pipeline → the decode run that is waiting for them. */
  const outstanding = new Map<Frame, DecodeRun>();

  return {
    streamId,
    info,
    skipped: () => 0,
    release(frame: Frame): void {
      const run = outstanding.get(frame);
      if (run === undefined) return; // unknown or already released: releasing twice must not free a slot twice
      outstanding.delete(frame);
      run.onRelease(frame);
    },
    frames: () =>
      new Observable<Frame>((subscriber) => {
        let run: DecodeRun | undefined;
        let closed = false;
        info().then(
          (stream) => {
            if (closed) return;
            run = new DecodeRun(opts.path, stream, opts.sampleFps, maxPending, killGraceMs, opts.reuseBuffers ?? false, outstanding, {
              next: (f) => subscriber.next(f),
              error: (e) => subscriber.error(e),
              complete: () => subscriber.complete(),
            });
            run.start();
          },
          (err: unknown) => subscriber.error(err),
        );
        return () => {
          closed = true;
          run?.stop();
        };
      }),
  };
}

interface RunObserver {
  next(frame: Frame): void;
  error(err: unknown): void;
  complete(): void;
}

/** One ffmpeg process feeding one subscriber. */
class DecodeRun {
  readonly #path: string;
  readonly #stream: StreamInfo;
  readonly #rate: number;
  readonly #filter: string | undefined;
  readonly #frameBytes: number;
  readonly #maxPending: number;
  readonly #killGraceMs: number;
  readonly #outstanding: Map<Frame, DecodeRun>;
  readonly #out: RunObserver;
  readonly #stderrTail: string[] = [];

  #proc: ChildProcess | undefined;
  #sink: Writable | undefined;
  /** bytes read from the pipe but not yet cut into frames. */
  #leftover: Buffer | undefined;
  /** the sink's write callback, held while #leftover waits for a release: this is the back-pressure. */
  #writeDone: ((err?: Error | null) => void) | undefined;
  #frame: Buffer | undefined;
  /** released frames' buffers, when reuseBuffers: at most maxPending. */
  readonly #free: Buffer[] | undefined;
  #filled = 0;
  #frameId = 0;
  #mine = 0;
  #pumping = false;
  #pipeEnded = false;
  #exit: { error?: unknown } | undefined;
  #stopped = false;

  constructor(
    path: string,
    stream: StreamInfo,
    sampleFps: number | undefined,
    maxPending: number,
    killGraceMs: number,
    reuseBuffers: boolean,
    outstanding: Map<Frame, DecodeRun>,
    out: RunObserver,
  ) {
    this.#path = path;
    this.#stream = stream;
    this.#maxPending = maxPending;
    this.#killGraceMs = killGraceMs;
    this.#outstanding = outstanding;
    this.#out = out;
    this.#frameBytes = stream.width * stream.height * 3;
    this.#free = reuseBuffers ? [] : undefined;
    const sourceFps = stream.fps;
    // Sampling only ever thins: asking for more than the source has would duplicate frames.
    if (sourceFps === undefined) {
      this.#rate = sampleFps ?? FALLBACK_FPS;
      this.#filter = `fps=${this.#rate}`;
    } else if (sampleFps !== undefined && sampleFps < sourceFps) {
      this.#rate = sampleFps;
      this.#filter = `fps=${sampleFps}`;
    } else {
      this.#rate = sourceFps;
      this.#filter = undefined;
    }
  }

  start(): void {
    const command = ffmpeg(this.#path)
      .inputOptions(['-nostdin', '-hide_banner', '-loglevel', 'error'])
      .noAudio()
      .outputOptions(['-sn', '-dn', '-pix_fmt', 'rgb24'])
      .format('rawvideo');
    if (this.#filter !== undefined) command.videoFilters(this.#filter);
    command.on('start', () => {
      this.#proc = (command as unknown as { ffmpegProc?: ChildProcess }).ffmpegProc;
      if (this.#stopped) this.#kill();
    });
    command.on('stderr', (line: string) => {
      if (line.trim() === '') return;
      this.#stderrTail.push(line.trim());
      if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift();
    });
    command.on('end', () => this.#onExit({}));
    command.on('error', (err: unknown) => this.#onExit({ error: err }));
    // Our own sink rather than fluent-ffmpeg's PassThrough: fluent kills ffmpeg 20 ms after its output stream
    // closes, which under load can come before ffmpeg's exit is seen and turn a clean end into an error. This
    // sink never emits 'close', and it ends ('final') only after every byte has been cut into frames.
    const sink = new Writable({
      emitClose: false,
      autoDestroy: false,
      write: (chunk: Buffer, _enc, done) => {
        this.#leftover = chunk;
        this.#writeDone = done;
        this.#pump();
      },
      final: (done) => {
        this.#pipeEnded = true;
        done();
        this.#maybeFinish();
      },
    });
    sink.on('error', () => undefined); // writes after stop(): ffmpeg is being killed anyway
    command.pipe(sink, { end: true });
    this.#sink = sink;
  }

  /** The subscriber left: no more events, and ffmpeg must go. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#leftover = undefined;
    this.#writeDone = undefined;
    this.#forgetOutstanding();
    this.#sink?.destroy();
    this.#kill();
  }

  onRelease(frame: Frame): void {
    if (this.#free !== undefined && frame.data.length === this.#frameBytes && this.#free.length < this.#maxPending) this.#free.push(frame.data);
    this.#mine--;
    if (this.#mine < this.#maxPending) this.#pump();
  }

  /** Cut whatever bytes we hold into frames while the pending bound allows; then ask for the next chunk. */
  #pump(): void {
    // Re-entrant calls (a subscriber releasing synchronously inside next()) are folded into the running loop.
    if (this.#pumping || this.#stopped) return;
    this.#pumping = true;
    try {
      while (this.#leftover !== undefined && this.#mine < this.#maxPending && !this.#stopped) {
        const chunk = this.#leftover;
        const frame = (this.#frame ??= this.#free?.pop() ?? Buffer.allocUnsafe(this.#frameBytes));
        const n = Math.min(chunk.length, this.#frameBytes - this.#filled);
        chunk.copy(frame, this.#filled, 0, n);
        this.#filled += n;
        this.#leftover = n === chunk.length ? undefined : chunk.subarray(n);
        if (this.#filled === this.#frameBytes) this.#emit(frame);
      }
    } finally {
      this.#pumping = false;
    }
    if (this.#stopped || this.#leftover !== undefined) return;
    const done = this.#writeDone;
    this.#writeDone = undefined;
    done?.(); // may deliver the next chunk right here (a re-entrant write), after the loop above has finished
  }

  #emit(data: Buffer): void {
    this.#frame = undefined;
    this.#filled = 0;
    const frameId = this.#frameId++;
    const frame: Frame = {
      streamId: this.#stream.streamId,
      frameId,
      pts: frameId / this.#rate,
      width: this.#stream.width,
      height: this.#stream.height,
      data,
    };
    this.#outstanding.set(frame, this);
    this.#mine++;
    this.#out.next(frame);
  }

  #onExit(result: { error?: unknown }): void {
    if (this.#exit !== undefined) return;
    this.#exit = result;
    // If ffmpeg never started (not spawnable), there is no pipe to wait for.
    if (this.#proc === undefined) this.#pipeEnded = true;
    this.#maybeFinish();
  }

  /** Finish only when ffmpeg has exited AND every byte it wrote has been turned into frames. */
  #maybeFinish(): void {
    if (this.#stopped || this.#exit === undefined || !this.#pipeEnded || this.#leftover !== undefined) return;
    this.#stopped = true;
    const partialBytes = this.#filled;
    const reason = this.#reasonLine();
    const truncated = partialBytes > 0 || this.#stderrTail.some((l) => TRUNCATION_MARK.test(l));
    const exitError = this.#exit.error;
    if (exitError === undefined && !truncated) {
      this.#out.complete();
      return;
    }
    const at = `after ${this.#frameId} frames`;
    const err = truncated
      ? new IngestError('CS_ERR_TRUNCATED', this.#path, `truncated video: ${this.#path} ${at} (${reason ?? `${partialBytes} bytes of a partial frame`})`, {
          cause: exitError,
        })
      : new IngestError('CS_ERR_FFMPEG_EXIT', this.#path, `ffmpeg failed on ${this.#path} ${at} (${reason ?? errorLine(exitError)})`, {
          cause: exitError,
        });
    this.#out.error(err);
  }

  /** The stderr line that best says what went wrong: the last one that reads like truncation, else the last. */
  #reasonLine(): string | undefined {
    const clean = (l: string): string => l.replace(/^\[[^\]]*@ 0x[0-9a-f]+\]\s*/, '');
    const marked = [...this.#stderrTail].reverse().find((l) => TRUNCATION_MARK.test(l));
    const last = marked ?? this.#stderrTail[this.#stderrTail.length - 1];
    return last === undefined ? undefined : clean(last);
  }

  #forgetOutstanding(): void {
    for (const [frame, run] of this.#outstanding) if (run === this) this.#outstanding.delete(frame);
    this.#mine = 0;
  }

  #kill(): void {
    const proc = this.#proc;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    }, this.#killGraceMs);
    timer.unref();
  }
}

// Stills decode through sharp, not ffmpeg; re-exported so callers find every way in under one import.
export { loadImageFrame } from './image.js';
