// Picks one face thumbnail per track: the crop of its highest-confidence observation.
// Crops arrive from the pipeline's crop hook before the model has read them; the matching
// face.observation (same stream, track and frame) arrives later with the confidence. Pending crops are
// held only until their observation passes, so memory is one best crop per track plus what is in flight.
import sharp from 'sharp';
import type { FaceCrop, FaceObservationEvent } from '../types.js';

/** Crops waiting for their observation; past this many, the oldest are forgotten (never unbounded). */
const MAX_PENDING = 128;
const THUMB_SIZE = 96;

interface Best {
  confidence: number;
  crop: FaceCrop;
}

export class ThumbnailCollector {
  readonly #pending = new Map<string, FaceCrop>();
  readonly #best = new Map<string, Best>();

  /** Give to the pipeline as its crop hook. The crop's pixels are copied: the pipeline may reuse them. */
  readonly onCrop = (crop: FaceCrop): void => {
    this.#pending.set(key(crop.streamId, crop.trackId, crop.frameId), { ...crop, rgb: Buffer.from(crop.rgb) });
    if (this.#pending.size > MAX_PENDING) {
      const oldest = this.#pending.keys().next().value;
      if (oldest !== undefined) this.#pending.delete(oldest);
    }
  };

  observe(event: FaceObservationEvent): void {
    const k = key(event.streamId, event.trackId, event.frameId);
    const crop = this.#pending.get(k);
    // crops of this track from earlier frames will never be matched now (no observation was emitted for them)
    for (const [pk, pc] of this.#pending) {
      if (pc.streamId === event.streamId && pc.trackId === event.trackId && pc.frameId <= event.frameId) this.#pending.delete(pk);
    }
    if (!crop) return;
    const trackKey = `${event.streamId}/${event.trackId}`;
    const best = this.#best.get(trackKey);
    if (!best || event.confidence > best.confidence) this.#best.set(trackKey, { confidence: event.confidence, crop });
  }

  /** One small JPEG per track, keyed "streamId/trackId". */
  async jpegs(): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    for (const [k, { crop }] of this.#best) {
      const jpeg = await sharp(crop.rgb, { raw: { width: crop.size, height: crop.size, channels: 3 } })
        .resize(THUMB_SIZE, THUMB_SIZE)
        .jpeg({ quality: 80 })
        .toBuffer();
      out.set(k, jpeg);
    }
    return out;
  }
}

function key(streamId: string, trackId: string, frameId: number): string {
  return `${streamId}/${trackId}/${frameId}`;
}
