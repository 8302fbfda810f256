// A still picture (jpg, png, …) as one Frame, for detector checks and single-image analysis.

import sharp from 'sharp';
import { IngestError } from '../errors.js';
import type { Frame } from '../types.js';
import { assertReadableFile } from './probe.js';

export async function loadImageFrame(path: string, streamId = path): Promise<Frame> {
  await assertReadableFile(path);
  try {
    // rotate() applies EXIF orientation; toColourspace('srgb') turns grey into 3 channels; alpha is dropped.
    const { data, info } = await sharp(path).rotate().removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels, decoded ${info.channels}`);
    return { streamId, frameId: 0, pts: 0, width: info.width, height: info.height, data };
  } catch (err) {
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new IngestError('CS_ERR_NOT_A_VIDEO', path, `not an image: ${path} (${reason})`, { cause: err });
  }
}
