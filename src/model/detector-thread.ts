// The face detector on a worker thread, behind the same FaceDetector interface.
//
// Why: both model stages run on the thread that calls them. onnxruntime-node's `run()` only defers to
// setImmediate and then runs the session synchronously on the same thread (dist/backend.js), and tfjs-wasm (the
// `tfjs` runtime) is synchronous too, its threaded build off in Node (tfjs-backend-wasm 4.22 reports
// WASM_HAS_MULTITHREAD_SUPPORT false when IS_NODE). With both on the main thread the detector and the expression
// model take turns, whatever the batching. On its own thread the detector runs beside the model stage.
//
// Frames are copied once into a transferable buffer (the source owns its frame buffers and reuses them), which the
// thread hands back with its answer for a later frame (transfer-buffers.ts).
//
// Exiting: the two threads share an exit guard (thread-guard.ts says why), and close() asks the thread to finish
// its jobs and end by itself before terminating it.
import type { Worker } from 'node:worker_threads';
import { CafeStreamError, ConfigError, ModelError } from '../errors.js';
import type { DetectHints, Detection, DetectorCounts, Frame } from '../types.js';
import type { FaceDetector, FaceDetectorOptions } from './face-detector.js';
import { createThreadGuard, waitForJobsInFlight } from './thread-guard.js';
import { startWorker } from '../worker-module.js';
import { TransferBuffers } from './transfer-buffers.js';

export type ToDetector =
  | { type: 'detect'; id: number; frame: Omit<Frame, 'data'>; data: ArrayBuffer; bytes: number; hints?: DetectHints }
  | { type: 'counts'; id: number }
  | { type: 'close' };

export type FromDetector =
  | { type: 'ready'; name: string }
  | { type: 'load-error'; message: string; code?: string | undefined }
  | { type: 'result'; id: number; detections: Detection[]; data?: ArrayBuffer }
  | { type: 'counts'; id: number; counts: DetectorCounts }
  | { type: 'error'; id: number; message: string; code?: string | undefined; data?: ArrayBuffer };

/** What the worker is started with. */
export interface DetectorWorkerData {
  options: FaceDetectorOptions;
  /** the exit guard (thread-guard.ts). */
  guard: Int32Array;
}
/** How long an exiting process waits for the detect jobs in flight (a job is a few to a few tens of ms). */
const EXIT_WAIT_MS = 3000;
/** How long close() lets the thread finish its jobs and end by itself before terminating it. */
const CLOSE_WAIT_MS = 5000;
/** Frame buffers kept for reuse: the frames in flight at once (a few; more streams of other sizes allocate). */
const MAX_SPARE_BUFFERS = 4;

/** Loads the detector in a worker thread; rejects with the worker's own load error (a ModelError or ConfigError). */
export async function loadFaceDetectorThread(opts: FaceDetectorOptions = {}): Promise<FaceDetector> {
  const guard = createThreadGuard();
  const worker = startWorker(import.meta.url, 'face-detector.worker', { workerData: { options: opts, guard } satisfies DetectorWorkerData });
  const name = await new Promise<string>((resolve, reject) => {
    const onMessage = (msg: FromDetector): void => {
      worker.off('error', onError);
      worker.off('message', onMessage);
      if (msg.type === 'ready') resolve(msg.name);
      else if (msg.type === 'load-error') {
        void worker.terminate();
        reject(msg.code === 'CS_ERR_CONFIG' ? new ConfigError('detector', msg.message) : new ModelError('CS_ERR_MODEL_LOAD', 'face detector', msg.message));
      }
    };
    const onError = (err: Error): void => {
      worker.off('message', onMessage);
      reject(new ModelError('CS_ERR_MODEL_LOAD', 'face detector', `face detector thread failed to start: ${err.message}`, { cause: err }));
    };
    worker.on('message', onMessage);
    worker.once('error', onError);
  });
  return new ThreadDetector(worker, `${name} (thread)`, guard);
}

class ThreadDetector implements FaceDetector {
  readonly name: string;
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (d: Detection[]) => void; reject: (e: unknown) => void }>();
  readonly #asked = new Map<number, { resolve: (c: DetectorCounts) => void; reject: (e: unknown) => void }>();
  readonly #onProcessExit: () => void;
  readonly #buffers = new TransferBuffers(MAX_SPARE_BUFFERS);
  #nextId = 1;
  #dead: Error | undefined;

  constructor(worker: Worker, name: string, guard: Int32Array) {
    this.name = name;
    this.#worker = worker;
    this.#onProcessExit = (): void => waitForJobsInFlight(guard, EXIT_WAIT_MS);
    process.on('exit', this.#onProcessExit);
    worker.on('message', (msg: FromDetector) => {
      if (msg.type === 'counts') {
        this.#asked.get(msg.id)?.resolve(msg.counts);
        this.#asked.delete(msg.id);
        return;
      }
      if (msg.type !== 'result' && msg.type !== 'error') return;
      if (msg.data !== undefined) this.#buffers.give(msg.data);
      const p = this.#pending.get(msg.id);
      this.#pending.delete(msg.id);
      if (msg.type === 'result') p?.resolve(msg.detections);
      else p?.reject(new CafeStreamError('CS_ERR_DETECTOR', msg.message));
    });
    worker.on('error', (err) => this.#die(err));
    worker.on('exit', () => this.#die(new Error('face detector thread exited')));
    // an idle detector thread must not keep the process alive
    worker.unref();
  }

  detect(frame: Frame, hints?: DetectHints): Promise<Detection[]> {
    if (this.#dead !== undefined) return Promise.reject(new CafeStreamError('CS_ERR_DETECTOR', `${this.name}: ${this.#dead.message}`));
    const id = this.#nextId++;
    const data = this.#buffers.take(frame.data.byteLength);
    new Uint8Array(data).set(frame.data);
    const { data: _unused, ...meta } = frame;
    return new Promise<Detection[]>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      if (this.#pending.size === 1) this.#worker.ref();
      const msg: ToDetector = { type: 'detect', id, frame: meta, data, bytes: frame.data.byteLength, ...(hints === undefined ? {} : { hints }) };
      this.#worker.postMessage(msg, [data]);
    }).finally(() => {
      if (this.#pending.size === 0) this.#worker.unref();
    });
  }

  counts(): Promise<DetectorCounts> {
    if (this.#dead !== undefined) return Promise.reject(new CafeStreamError('CS_ERR_DETECTOR', `${this.name}: ${this.#dead.message}`));
    const id = this.#nextId++;
    return new Promise<DetectorCounts>((resolve, reject) => {
      this.#asked.set(id, { resolve, reject });
      this.#worker.postMessage({ type: 'counts', id } satisfies ToDetector);
    });
  }

  async close(): Promise<void> {
    if (this.#dead !== undefined) return;
    this.#die(new Error('closed'));
    // the thread finishes its jobs, releases the model and ends; terminate() only if it does not in time
    const ended = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), CLOSE_WAIT_MS);
      this.#worker.once('exit', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    this.#worker.ref();
    this.#worker.postMessage({ type: 'close' } satisfies ToDetector);
    if (!(await ended)) await this.#worker.terminate();
  }

  #die(err: Error): void {
    if (this.#dead !== undefined) return;
    this.#dead = err;
    process.off('exit', this.#onProcessExit);
    for (const p of this.#pending.values()) p.reject(new CafeStreamError('CS_ERR_DETECTOR', `${this.name}: ${err.message}`));
    this.#pending.clear();
    for (const a of this.#asked.values()) a.reject(new CafeStreamError('CS_ERR_DETECTOR', `${this.name}: ${err.message}`));
    this.#asked.clear();
  }
}
