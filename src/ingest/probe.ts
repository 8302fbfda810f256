// What a file holds, asked of ffprobe once before decoding: the decoder needs width × height to split raw
// frames, and a file that is missing or not a video should fail here with one clear line, not mid-stream.

import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import ffmpeg from 'fluent-ffmpeg';
import { IngestError } from '../errors.js';
import type { StreamInfo } from '../types.js';

/** Demuxers that read a single picture: ffprobe reports a "video" stream for them, but they are not videos. */
const STILL_IMAGE_FORMAT = /(^|,)(image2|[a-z0-9]+_pipe)(,|$)/;

export async function probeFile(path: string, streamId?: string): Promise<StreamInfo> {
  await assertReadableFile(path);
  const data = await new Promise<ffmpeg.FfprobeData>((resolve, reject) => {
    ffmpeg.ffprobe(path, (err: unknown, result) => {
      if (err) {
        reject(probeError(path, err));
      } else {
        resolve(result);
      }
    });
  });

  const formatName = data.format.format_name ?? '';
  const video = data.streams.find((s) => s.codec_type === 'video' && !s.disposition?.attached_pic);
  if (!video || !video.width || !video.height) {
    throw new IngestError('CS_ERR_NOT_A_VIDEO', path, `not a video: ${path} (no video stream; format ${formatName || 'unknown'})`);
  }
  if (STILL_IMAGE_FORMAT.test(formatName)) {
    throw new IngestError('CS_ERR_NOT_A_VIDEO', path, `not a video: ${path} (a still ${video.codec_name ?? 'image'} image)`);
  }

  // ffmpeg auto-rotates on decode, so a ±90° display matrix swaps the size of the frames we will get.
  const rotation = Math.abs(Number(video.rotation ?? video.tags?.rotate ?? sideDataRotation(video) ?? 0)) % 180;
  const [width, height] = rotation === 90 ? [video.height, video.width] : [video.width, video.height];
  const fps = parseRate(video.r_frame_rate) ?? parseRate(video.avg_frame_rate);
  const duration = positive(Number(video.duration)) ?? positive(Number(data.format.duration));

  return {
    streamId: streamId ?? basename(path),
    source: path,
    kind: 'file',
    clock: 'media',
    width,
    height,
    ...(fps === undefined ? {} : { fps }),
    ...(duration === undefined ? {} : { duration }),
  };
}

export async function assertReadableFile(path: string): Promise<void> {
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new IngestError('CS_ERR_NOT_A_VIDEO', path, `not a video: ${path} (not a regular file)`);
  } catch (err) {
    if (err instanceof IngestError) throw err;
    throw new IngestError('CS_ERR_INPUT_MISSING', path, `no such file: ${path}`, { cause: err });
  }
}

/** "30000/1001" → 29.97; undefined for "0/0" and other non-rates. */
export function parseRate(rate: string | undefined): number | undefined {
  if (!rate) return undefined;
  const [num, den] = rate.split('/').map(Number);
  const value = den === undefined ? num : (num ?? NaN) / den;
  return positive(value);
}

function positive(x: number | undefined): number | undefined {
  return x !== undefined && Number.isFinite(x) && x > 0 ? x : undefined;
}

function sideDataRotation(stream: ffmpeg.FfprobeStream): number | undefined {
  const list = (stream as { side_data_list?: { rotation?: number | string }[] }).side_data_list;
  const entry = list?.find((d) => d.rotation !== undefined);
  return entry === undefined ? undefined : Number(entry.rotation);
}

/**
 * An MP4 whose index (moov, often written last) is cut off reads as "moov atom not found": that is a truncated
 * video, unless ffprobe only guessed MP4 at all ("detected only with low score": some other file renamed .mp4).
 */
function probeError(path: string, err: unknown): IngestError {
  const text = err instanceof Error ? err.message : String(err);
  if (/moov atom not found/.test(text) && !/detected only with low score/.test(text)) {
    return new IngestError('CS_ERR_TRUNCATED', path, `truncated video: ${path} (moov atom not found: the file ends before its index)`, {
      cause: err,
    });
  }
  return new IngestError('CS_ERR_NOT_A_VIDEO', path, `not a video: ${path} (${ffprobeReason(err)})`, { cause: err });
}

/** ffprobe's own last line ("…: Invalid data found when processing input") without the version banner. */
function ffprobeReason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  const last = lines[lines.length - 1] ?? 'ffprobe failed';
  return last.replace(/^.*?:\s(?=[A-Z])/, '');
}
