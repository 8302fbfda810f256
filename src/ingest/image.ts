// A still picture (jpg, png, …) as one Frame, for detector checks and single-image analysis.

import { stat } from 'node:fs/promises';
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
    if ((await stat(path)).size === 0) throw new IngestError('CS_ERR_NOT_A_VIDEO', path, `not an image: ${path} (empty file)`, { cause: err });
    // libvips: "premature end of JPEG image", "… truncated …", "… not enough data …": the file ends early, as a
    // truncated video does (same error code and exit code).
    if (/premature end|end of stream|truncat|not enough data|unexpected end/i.test(reason ?? '')) {
      throw new IngestError('CS_ERR_TRUNCATED', path, `truncated image: ${path} (${reason})`, { cause: err });
    }
    throw new IngestError('CS_ERR_NOT_A_VIDEO', path, `not an image: ${path} (${reason})`, { cause: err });
  }
}
