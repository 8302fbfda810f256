// The face detector on its own thread (detector-thread.ts says why). Loads the same detector as the main
// thread would, then answers detect requests (served one at a time by the detector itself). Every job counts
// itself in the shared guard while in flight and none starts once the process is exiting (detector-thread.ts).
import { parentPort, workerData } from 'node:worker_threads';
import type { Frame } from '../types.js';
import { loadFaceDetector } from './face-detector.js';
import type { DetectorWorkerData, FromDetector, ToDetector } from './detector-thread.js';
import { enterJob, leaveJob } from './thread-guard.js';

const port = parentPort;
if (port === null) throw new Error('face-detector.worker must run as a worker thread');
const post = (msg: FromDetector, transfer: ArrayBuffer[] = []): void => port.postMessage(msg, transfer);
const { options, guard } = workerData as DetectorWorkerData;
const inFlight = new Set<Promise<void>>();

try {
  const detector = await loadFaceDetector(options);
  post({ type: 'ready', name: detector.name });
  port.on('message', (msg: ToDetector) => {
    if (msg.type === 'close') {
      // the jobs already taken finish first: a model released under a running job would fail it
      void Promise.allSettled([...inFlight]).then(() => {
        detector.close();
        port.close();
      });
      return;
    }
    if (msg.type === 'counts') {
      void detector.counts().then((counts) => post({ type: 'counts', id: msg.id, counts }));
      return;
    }
    const done = (): void => leaveJob(guard);
    if (!enterJob(guard)) {
      done();
      post({ type: 'error', id: msg.id, message: 'the process is exiting' });
      return;
    }
    // the buffer may be a larger spare: the frame is its first `bytes`
    const frame: Frame = { ...msg.frame, data: Buffer.from(msg.data, 0, msg.bytes) };
    const job = detector
      .detect(frame, msg.hints)
      .then(
        // the frame's buffer goes back to be filled with a later frame (the detector keeps no reference to it)
        (detections) => post({ type: 'result', id: msg.id, detections, data: msg.data }, [msg.data]),
        (err: unknown) =>
          post({ type: 'error', id: msg.id, message: err instanceof Error ? err.message : String(err), code: (err as { code?: string }).code, data: msg.data }, [msg.data]),
      )
      .finally(() => {
        inFlight.delete(job);
        done();
      });
    inFlight.add(job);
  });
} catch (err) {
  post({ type: 'load-error', message: err instanceof Error ? err.message : String(err), code: (err as { code?: string }).code });
}
