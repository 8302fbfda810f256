// Detection: Frame → DetectedFrame. One call at a time per stream (concatMap), so frames stay in order and a
// stream never has more than one frame inside the detector; the queue in front of it is bounded by the
// source, which waits for its frames to be released.
import { type OperatorFunction, concatMap } from 'rxjs';
import { CafeStreamError, errorLine } from '../errors.js';
import type { DetectHints, DetectedFrame, Detection, Frame } from '../types.js';
import type { DetectorPort } from './ports.js';

export function detect(detector: DetectorPort): OperatorFunction<Frame, DetectedFrame> {
  return concatMap(async (frame) => ({ frame, detections: await detectOne(detector, frame) }));
}

/** One detector call; a failure becomes a CafeStreamError naming the frame. */
export async function detectOne(detector: DetectorPort, frame: Frame, hints?: DetectHints): Promise<Detection[]> {
  try {
    return await detector.detect(frame, hints);
  } catch (err) {
    if (err instanceof CafeStreamError) throw err;
    throw new CafeStreamError('CS_ERR_DETECTOR', `face detection failed on frame ${frame.frameId}: ${errorLine(err)}`, { cause: err });
  }
}
