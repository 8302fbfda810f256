// A still picture (jpg, png, …) as one Frame, for detector checks and single-image analysis. sharp (libvips)
// decodes the common formats; those it lacks (BMP, …) go to ffmpeg, which reads any still it has a decoder for.

import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { promisify } from 'node:util';
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
    // Whether it is an image sharp reads is the header's answer, not the message's: libvips' messages vary by
    // format ("pngload: IDAT stream error"), and beside concurrent decodes one can come back as "Unknown error".
    const header = await sharp(path).metadata().catch(() => undefined);
    const readable = header?.format !== undefined && (header.width ?? 0) > 0 && (header.height ?? 0) > 0;
    if (!readable) {
      // a format sharp lacks (BMP, …)
      const frame = await decodeWithFfmpeg(path, streamId).catch(() => undefined);
      if (frame !== undefined) return frame;
    }
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    if ((await stat(path)).size === 0) throw new IngestError('CS_ERR_NOT_A_VIDEO', path, `not an image: ${path} (empty file)`, { cause: err });
    // libvips: "premature end of JPEG image", "… truncated …", "… not enough data …": the file ends early, as a
    // truncated video does (same error code and exit code).
    if (/premature end|end of stream|truncat|not enough data|unexpected end/i.test(reason ?? '')) {
      throw new IngestError('CS_ERR_TRUNCATED', path, `truncated image: ${path} (${reason})`, { cause: err });
    }
    if (readable) {
      throw new IngestError('CS_ERR_TRUNCATED', path, `damaged image: ${path} (a ${header.format} header, ${header.width}×${header.height}, whose pixel data does not decode: ${reason})`, {
        cause: err,
      });
    }
    throw new IngestError('CS_ERR_NOT_A_VIDEO', path, `not an image: ${path} (${reason})`, { cause: err });
  }
}

const run = promisify(execFile);

/** The first picture of `path` through ffprobe (its size) and ffmpeg (its pixels, rgb24). */
async function decodeWithFfmpeg(path: string, streamId: string): Promise<Frame> {
  const probe = await run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=width,height', '-of', 'csv=p=0', path]);
  const [width, height] = probe.stdout.trim().split(',').map(Number);
  if (!width || !height) throw new Error(`ffprobe found no picture in ${path}`);
  const { stdout } = await run('ffmpeg', ['-v', 'error', '-i', path, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], {
    encoding: 'buffer',
    maxBuffer: width * height * 3 + 1024,
  });
  if (stdout.length !== width * height * 3) throw new Error(`ffmpeg decoded ${stdout.length} bytes, want ${width * height * 3}`);
  return { streamId, frameId: 0, pts: 0, width, height, data: stdout };
}
