// A detector that treats the frames of photo streams as photos: when the detector finds no face, the photo is
// tried once more with a border (padded-detect.ts: a photo may be a tight face crop). Frames of other streams
// (videos, cameras) go straight to the detector. `analyze` on photos and `evaluate` share this, so a photo is
// read the same way by both.
import type { FaceDetector } from './face-detector.js';
import { detectInPhoto } from './padded-detect.js';

export function withPhotoRetry(detector: FaceDetector, isPhotoStream: (streamId: string) => boolean): FaceDetector {
  return {
    name: detector.name,
    detect: (frame, hints) => (isPhotoStream(frame.streamId) ? detectInPhoto(detector, frame) : detector.detect(frame, hints)),
    close: () => detector.close(),
    counts: () => detector.counts(),
  };
}
