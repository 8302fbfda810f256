// Cropping: TrackedFrame → the same frame with one square crop per face, ready for the model.
//
// Framing: a square centred on the detector's box, side = longer box side × `scale` (default 1.3; FER2013's
// faces fill ≈ 1/1.25–1/1.4 of their image, and the model is trained on that framing). Where the square
// leaves the frame, the outside is filled with the nearest edge pixel (edge replication, not black: a black
// band is a strong, meaningless feature for a model trained on full images). The square is then resized to
// `size` × `size` with sharp (cubic kernel, which also antialiases when shrinking).
import sharp from 'sharp';
import { type OperatorFunction, concatMap } from 'rxjs';
import type { Box, FaceCrop, Frame, TrackedFrame } from '../types.js';
import type { CroppedFrame } from './messages.js';
import { type CropOptions, cropOptionsSchema } from './options.js';

/** The square crop region in frame pixels (may extend past the frame). */
export function cropSquare(box: Box, scale: number): Box {
  const side = Math.max(1, Math.round(Math.max(box.width, box.height) * scale));
  const x = Math.round(box.x + box.width / 2 - side / 2);
  const y = Math.round(box.y + box.height / 2 - side / 2);
  return { x, y, width: side, height: side };
}

/** Copies `region` out of the RGB24 frame, replicating edge pixels outside it. */
export function extractClamped(frame: Frame, region: Box): Buffer {
  const { width: fw, height: fh, data } = frame;
  const { x: rx, y: ry, width: rw, height: rh } = region;
  const out = Buffer.allocUnsafe(rw * rh * 3);
  // Columns inside the frame are one contiguous copy per row; only the overhangs are filled pixel by pixel.
  const inL = Math.min(rw, Math.max(0, -rx));
  const inR = Math.max(inL, Math.min(rw, fw - rx));
  for (let row = 0; row < rh; row++) {
    const sy = Math.min(fh - 1, Math.max(0, ry + row));
    const srcRow = sy * fw * 3;
    const dstRow = row * rw * 3;
    if (inR > inL) data.copy(out, dstRow + inL * 3, srcRow + (rx + inL) * 3, srcRow + (rx + inR) * 3);
    const left = srcRow + Math.min(fw - 1, Math.max(0, rx)) * 3;
    for (let c = 0; c < inL; c++) data.copy(out, dstRow + c * 3, left, left + 3);
    const right = srcRow + Math.min(fw - 1, Math.max(0, rx + rw - 1)) * 3;
    for (let c = inR; c < rw; c++) data.copy(out, dstRow + c * 3, right, right + 3);
  }
  return out;
}

export async function cropFace(frame: Frame, box: Box, size: number, scale: number): Promise<Buffer> {
  const region = cropSquare(box, scale);
  const square = extractClamped(frame, region);
  if (region.width === size) return square;
  return sharp(square, { raw: { width: region.width, height: region.height, channels: 3 } })
    .resize(size, size, { fit: 'fill', kernel: 'cubic' })
    .raw()
    .toBuffer();
}

/** One crop per tracked face, in `faces` order; frames without faces pass straight through. */
export function crop(size: number, options: Partial<CropOptions> = {}): OperatorFunction<TrackedFrame, CroppedFrame> {
  const { scale } = cropOptionsSchema.parse(options);
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`crop size must be a positive integer, got ${size}`);
  return concatMap(async (tracked): Promise<CroppedFrame> => {
    const { frame } = tracked;
    const crops = await Promise.all(
      tracked.faces.map(
        async (face): Promise<FaceCrop> => ({
          streamId: frame.streamId,
          frameId: frame.frameId,
          pts: frame.pts,
          trackId: face.trackId,
          box: face.box,
          size,
          rgb: await cropFace(frame, face.box, size, scale),
        }),
      ),
    );
    return { ...tracked, crops };
  });
}
