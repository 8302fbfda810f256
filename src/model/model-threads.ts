// The CPU model stage on worker threads, behind the same ExpressionModel interface: two threads, each with the
// models loaded and one onnxruntime thread; each batch goes to the thread with the fewest batches.
//
// Why: onnxruntime-node's run() runs the session synchronously on the thread that calls it (detector-thread.ts
// says more). On the main thread every batch held up the tracker, the sinks, HTTP, and the loop that feeds the
// detector thread: with the model reading batch after batch there, the detector got 7 calls/s beside it, against
// 93 with the model on these threads (bench/ort-threads.ts). Two sessions of one thread each read the two batches
// the pipeline keeps in flight (`batch.maxInFlight`, default 2) side by side, with no join between intra-op
// threads. The model stage alone is about as fast as one two-thread session (0.97–1.07×); the pipeline around
// it is faster: the 16-face grid 0.35–0.5 s sooner, 8 cameras' p95 159 → 133–136 ms (BENCHMARKS.md). The cost
// is memory: a second session, ~+150 MB RSS.
//
// A GPU keeps the model on the calling thread (one session already fills the device): this is only for a
// device that resolves to the CPU.
import type { Worker } from 'node:worker_threads';
import { ConfigError, InferenceError, ModelError, type ErrorCode } from '../errors.js';
import { EXPRESSIONS, type Expression, type FaceCrop } from '../types.js';
import { startWorker } from '../worker-module.js';
import { loadExpressionModel, type ExpressionModel, type ExpressionModelOptions } from './expression-model.js';
import type { EncoderPrecision } from './manifest.js';
import { missingGpuDevice, providerOrder } from './onnx-runtime.js';
import { checkModelThreads, CPU_MODEL_THREADS, ortThreadsPerModelThread } from './model-thread-count.js';
import { createThreadGuard, waitForJobsInFlight } from './thread-guard.js';
import { TransferBuffers } from './transfer-buffers.js';

/** onnxruntime threads per model thread by default: the cores shared out (1 each on this project's 2-core machines). */
export const CPU_THREADS_PER_MODEL_THREAD = ortThreadsPerModelThread(CPU_MODEL_THREADS);
/** How long an exiting process waits for the batches in flight (a batch of 16 is ~0.2 s on one thread). */
const EXIT_WAIT_MS = 3000;
/** How long close() lets the threads finish their batches and end by themselves before terminating them. */
const CLOSE_WAIT_MS = 5000;
/** Pixel buffers kept for reuse: the batches in flight (`batch.maxInFlight`, default 2), with room to spare. */
const MAX_SPARE_BUFFERS = 4;

export type ToModel = { type: 'infer'; id: number; sizes: number[]; pixels: ArrayBuffer } | { type: 'close' };

export type FromModel =
  | { type: 'ready'; cropSize: number; provider: string; precision: EncoderPrecision; log: string[] }
  | { type: 'load-error'; message: string; code?: string | undefined; modelPath?: string | undefined; key?: string | undefined }
  | { type: 'result'; id: number; probabilities: ArrayBuffer; classes: number; pixels?: ArrayBuffer }
  | { type: 'error'; id: number; message: string; pixels?: ArrayBuffer };

export interface ModelWorkerData {
  options: Omit<ExpressionModelOptions, 'log'>;
  guard: Int32Array;
}

export interface ModelThreadsOptions extends ExpressionModelOptions {
  /** model threads when the device resolves to the CPU; default CPU_MODEL_THREADS; 0 loads the model on the
   * calling thread (one session: less memory, but every batch holds up that thread). `threads` (onnxruntime's,
   * per session) defaults to the cores shared out among the model threads. */
  modelThreads?: number;
}

/**
 * The expression model for the pipeline: on `modelThreads` threads when the device resolves to the CPU, else
 * loaded on this thread (loadExpressionModel). Rejects with the threads' own load error (a ModelError or
 * ConfigError, as loadExpressionModel would).
 */
export async function loadExpressionModelThreads(opts: ModelThreadsOptions): Promise<ExpressionModel> {
  const device = opts.device ?? 'auto';
  const gpuPossible = providerOrder(device).some((p) => p !== 'cpu' && (device !== 'auto' || missingGpuDevice(p) === undefined));
  const { log, modelThreads, ...options } = opts;
  const count = checkModelThreads(modelThreads ?? CPU_MODEL_THREADS);
  if (gpuPossible || count === 0) return loadExpressionModel({ ...options, ...(log ? { log } : {}) });
  const guard = createThreadGuard();
  const data: ModelWorkerData = { options: { ...options, threads: options.threads ?? ortThreadsPerModelThread(count) }, guard };
  // The first thread is the load: the pipeline starts as soon as it reads. The others load beside the first
  // batches and take work once ready, so a start costs one session's loading, not `count` of them at once.
  const first = await startModelThread(data);
  const threadsNote = `${count} model thread${count === 1 ? '' : 's'}`;
  for (const line of first.ready.log) log?.(line.includes(' on cpu (') ? line.replace(' on cpu (', ` on cpu (${threadsNote}; `) : line.replace(/ on cpu$/, ` on cpu (${threadsNote})`));
  const model = new ThreadedExpressionModel(first.worker, guard, first.ready, log);
  for (let i = 1; i < count; i++) model.join(startModelThread(data));
  return model;
}

function startModelThread(data: ModelWorkerData): Promise<{ worker: Worker; ready: Extract<FromModel, { type: 'ready' }> }> {
  const worker = startWorker(import.meta.url, 'expression-model.worker', { workerData: data });
  return new Promise((resolve, reject) => {
    const onMessage = (msg: FromModel): void => {
      worker.off('error', onError);
      worker.off('message', onMessage);
      if (msg.type === 'ready') resolve({ worker, ready: msg });
      else if (msg.type === 'load-error') {
        void worker.terminate();
        reject(
          msg.code === 'CS_ERR_CONFIG'
            ? new ConfigError(msg.key ?? 'models', msg.message)
            : new ModelError((msg.code as ErrorCode | undefined) ?? 'CS_ERR_MODEL_LOAD', msg.modelPath ?? data.options.modelsDir, msg.message),
        );
      }
    };
    const onError = (err: Error): void => {
      worker.off('message', onMessage);
      reject(new ModelError('CS_ERR_MODEL_LOAD', data.options.modelsDir, `model thread failed to start: ${err.message}`, { cause: err }));
    };
    worker.on('message', onMessage);
    worker.once('error', onError);
  });
}

interface Pending {
  n: number;
  resolve: (p: Float32Array[]) => void;
  reject: (e: unknown) => void;
}

/** One model thread as the main thread sees it. */
class ModelThread {
  readonly worker: Worker;
  readonly pending = new Map<number, Pending>();
  dead: Error | undefined;

  constructor(worker: Worker, buffers: TransferBuffers, onDeath: (t: ModelThread, err: Error) => void) {
    this.worker = worker;
    worker.on('message', (msg: FromModel) => {
      if (msg.type !== 'result' && msg.type !== 'error') return;
      if (msg.pixels !== undefined) buffers.give(msg.pixels);
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (this.pending.size === 0) worker.unref();
      if (p === undefined) return;
      if (msg.type === 'error') return p.reject(new InferenceError(msg.message));
      const all = new Float32Array(msg.probabilities);
      p.resolve(Array.from({ length: p.n }, (_, i) => all.subarray(i * msg.classes, (i + 1) * msg.classes)));
    });
    worker.on('error', (err) => onDeath(this, err));
    worker.on('exit', () => onDeath(this, new Error('model thread exited')));
    // an idle model thread must not keep the process alive
    worker.unref();
  }
}

export class ThreadedExpressionModel implements ExpressionModel {
  readonly classes: readonly Expression[] = EXPRESSIONS;
  readonly cropSize: number;
  readonly provider: string;
  readonly precision: EncoderPrecision;
  readonly #threads: ModelThread[] = [];
  readonly #buffers = new TransferBuffers(MAX_SPARE_BUFFERS);
  /** threads still loading; close() waits for them. */
  readonly #joining = new Set<Promise<unknown>>();
  readonly #log: ((line: string) => void) | undefined;
  readonly #onProcessExit: () => void;
  #nextId = 1;
  #closed: Promise<void> | undefined;

  constructor(worker: Worker, guard: Int32Array, ready: Extract<FromModel, { type: 'ready' }>, log: ((line: string) => void) | undefined) {
    this.cropSize = ready.cropSize;
    this.provider = ready.provider;
    this.precision = ready.precision;
    this.#log = log;
    this.#threads.push(this.#adopt(worker));
    this.#onProcessExit = (): void => waitForJobsInFlight(guard, EXIT_WAIT_MS);
    process.on('exit', this.#onProcessExit);
  }

  /** A thread that is still loading: it takes batches once ready; if it fails, the others go on without it. */
  join(start: Promise<{ worker: Worker }>): void {
    const joined = start.then(
      ({ worker }) => {
        if (this.#closed !== undefined) return worker.terminate();
        this.#threads.push(this.#adopt(worker));
        return undefined;
      },
      (err: unknown) => this.#log?.(`a model thread did not load (${err instanceof Error ? err.message : String(err)}); reading on ${this.#threads.length}`),
    );
    this.#joining.add(joined);
    void joined.finally(() => this.#joining.delete(joined));
  }

  /** Resolves once every thread has loaded or failed to: how many read batches (for tests and benches). */
  async whenAllLoaded(): Promise<number> {
    await Promise.all(this.#joining);
    return this.#threads.filter((t) => t.dead === undefined).length;
  }

  #adopt(worker: Worker): ModelThread {
    return new ModelThread(worker, this.#buffers, (t, err) => this.#lost(t, err));
  }

  infer(crops: FaceCrop[]): Promise<Float32Array[]> {
    if (this.#closed !== undefined) return Promise.reject(new InferenceError('expression model is closed'));
    if (crops.length === 0) return Promise.resolve([]);
    const alive = this.#threads.filter((t) => t.dead === undefined);
    if (alive.length === 0) return Promise.reject(new InferenceError(`the model threads have ended (${this.#threads[0]?.dead?.message ?? 'unknown'})`));
    const thread = alive.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    // one buffer for the batch's pixels, moved to the thread and handed back with the answer (the crops stay the caller's)
    const bad = crops.find((c) => c.rgb.length !== c.size * c.size * 3);
    if (bad !== undefined) return Promise.reject(new RangeError(`crop of size ${bad.size} has ${bad.rgb.length} bytes, expected ${bad.size * bad.size * 3}`));
    const sizes = crops.map((c) => c.size);
    const pixels = this.#buffers.take(sizes.reduce((a, s) => a + s * s * 3, 0));
    const view = new Uint8Array(pixels);
    let offset = 0;
    for (const c of crops) {
      view.set(c.rgb, offset);
      offset += c.rgb.length;
    }
    const id = this.#nextId++;
    return new Promise<Float32Array[]>((resolve, reject) => {
      thread.pending.set(id, { n: crops.length, resolve, reject });
      if (thread.pending.size === 1) thread.worker.ref();
      thread.worker.postMessage({ type: 'infer', id, sizes, pixels } satisfies ToModel, [pixels]);
    });
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      await Promise.all(this.#joining); // a thread that loads meanwhile is terminated at once (join)
      process.off('exit', this.#onProcessExit);
      await Promise.all(
        this.#threads.map(async (t) => {
          if (t.dead !== undefined) return;
          // the thread finishes its batches, releases the sessions and ends; terminate() only if it does not in time
          const ended = new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(false), CLOSE_WAIT_MS);
            t.worker.once('exit', () => {
              clearTimeout(timer);
              resolve(true);
            });
          });
          t.worker.ref();
          t.worker.postMessage({ type: 'close' } satisfies ToModel);
          if (!(await ended)) await t.worker.terminate();
        }),
      );
    })();
    return this.#closed;
  }

  #lost(t: ModelThread, err: Error): void {
    if (t.dead !== undefined) return;
    t.dead = err;
    const reason = this.#closed !== undefined ? 'expression model is closed' : `model thread ended: ${err.message}`;
    for (const p of t.pending.values()) p.reject(new InferenceError(reason));
    t.pending.clear();
  }
}
