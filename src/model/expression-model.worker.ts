// One model thread (model-threads.ts says why): loads the expression model, then reads the batches it is sent,
// one at a time. The load (which runs the models once) and every batch count in the shared exit guard.
import { parentPort, workerData } from 'node:worker_threads';
import type { FaceCrop } from '../types.js';
import { errorLine } from '../errors.js';
import { loadExpressionModel } from './expression-model.js';
import type { FromModel, ModelWorkerData, ToModel } from './model-threads.js';
import { enterJob, leaveJob } from './thread-guard.js';

const port = parentPort;
if (port === null) throw new Error('expression-model.worker must run as a worker thread');
const post = (msg: FromModel, transfer: ArrayBuffer[] = []): void => port.postMessage(msg, transfer);
const { options, guard } = workerData as ModelWorkerData;

/** Loading runs the models once (a probe), so it counts in the guard as a batch does. */
async function load(lines: string[]): ReturnType<typeof loadExpressionModel> {
  try {
    if (!enterJob(guard)) throw new Error('the process is exiting');
    return await loadExpressionModel({ ...options, log: (line) => lines.push(line) });
  } finally {
    leaveJob(guard);
  }
}

try {
  const lines: string[] = [];
  const model = await load(lines);
  post({ type: 'ready', cropSize: model.cropSize, provider: model.provider, precision: model.precision, log: lines });
  let chain = Promise.resolve();
  port.on('message', (msg: ToModel) => {
    if (msg.type === 'close') {
      // the batches already taken finish first: a session released under a running batch would fail it
      chain = chain.then(async () => {
        await model.close();
        port.close();
      });
      return;
    }
    chain = chain.then(async () => {
      if (!enterJob(guard)) {
        leaveJob(guard);
        post({ type: 'error', id: msg.id, message: 'the process is exiting' });
        return;
      }
      try {
        let offset = 0;
        const crops = msg.sizes.map((size) => {
          const rgb = Buffer.from(msg.pixels, offset, size * size * 3);
          offset += rgb.length;
          return { size, rgb } as FaceCrop; // the model reads a crop's pixels only
        });
        const probabilities = await model.infer(crops);
        const k = probabilities[0]?.length ?? 0;
        const out = new Float32Array(probabilities.length * k);
        probabilities.forEach((p, i) => out.set(p, i * k));
        // the pixels go back to carry a later batch (the crops above are views of them, and are done with)
        post({ type: 'result', id: msg.id, probabilities: out.buffer, classes: k, pixels: msg.pixels }, [out.buffer, msg.pixels]);
      } catch (err) {
        post({ type: 'error', id: msg.id, message: errorLine(err), pixels: msg.pixels }, [msg.pixels]);
      } finally {
        leaveJob(guard);
      }
    });
  });
} catch (err) {
  const e = err as { code?: string; modelPath?: string; key?: string };
  post({ type: 'load-error', message: err instanceof Error ? err.message : String(err), code: e.code, modelPath: e.modelPath, key: e.key });
}
