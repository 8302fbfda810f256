// The face detector on its own thread (detector-thread.ts says why). Loads the same detector as the main
// thread would, then answers one detect request at a time.
import { parentPort, workerData } from 'node:worker_threads';
import type { Frame } from '../types.js';
import { type FaceDetectorOptions, loadFaceDetector } from './face-detector.js';
import type { FromDetector, ToDetector } from './detector-thread.js';

const port = parentPort;
if (port === null) throw new Error('face-detector.worker must run as a worker thread');
const post = (msg: FromDetector): void => port.postMessage(msg);

try {
  const detector = await loadFaceDetector(workerData as FaceDetectorOptions);
  post({ type: 'ready', name: detector.name });
  port.on('message', (msg: ToDetector) => {
    if (msg.type === 'close') {
      detector.close();
      port.close();
      return;
    }
    if (msg.type === 'counts') {
      void detector.counts().then((counts) => post({ type: 'counts', id: msg.id, counts }));
      return;
    }
    const frame: Frame = { ...msg.frame, data: Buffer.from(msg.data) };
    detector.detect(frame, msg.hints).then(
      (detections) => post({ type: 'result', id: msg.id, detections }),
      (err: unknown) => post({ type: 'error', id: msg.id, message: err instanceof Error ? err.message : String(err), code: (err as { code?: string }).code }),
    );
  });
} catch (err) {
  post({ type: 'load-error', message: err instanceof Error ? err.message : String(err), code: (err as { code?: string }).code });
}
