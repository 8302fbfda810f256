// Test videos made on the fly from the shared clips and images with the real ffmpeg, in a temp folder.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { sharedPath } from './shared.js';

const run = promisify(execFile);

export function tempDir(prefix = 'cafe-stream-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

async function ffmpeg(args: string[]): Promise<void> {
  await run('ffmpeg', ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', ...args]);
}

/** Two shared clips side by side (the recipe of shared/README.md): d0 on the left, d3 on the right, 3 s. */
export async function makeTwoFaceVideo(out: string): Promise<string> {
  await ffmpeg([
    '-i', sharedPath('data', 'videos', 'd0.mp4'),
    '-i', sharedPath('data', 'videos', 'd3.mp4'),
    '-filter_complex', '[0:v]scale=512:512,fps=25[a];[1:v]scale=512:512,fps=25[b];[a][b]hstack,trim=duration=3',
    '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', out,
  ]);
  return out;
}

/** A shared clip played `times` times in a row, stream-copied (no re-encode): a longer run of the same faces. */
export async function makeLoopedVideo(name: string, times: number, out: string): Promise<string> {
  await ffmpeg(['-stream_loop', String(times - 1), '-i', sharedPath('data', 'videos', name), '-c', 'copy', out]);
  return out;
}

/** A still image as a video of `frames` frames (lossless FFV1 in Matroska: any size, no colour loss). */
export async function makeStillVideo(image: string, out: string, frames = 1): Promise<string> {
  await ffmpeg(['-loop', '1', '-i', image, '-frames:v', String(frames), '-r', '25', '-c:v', 'ffv1', '-pix_fmt', 'bgr0', out]);
  return out;
}

/** The first half of the bytes of a file, like `head -c`. */
export function truncateFile(src: string, out: string, fraction = 0.5): string {
  const bytes = readFileSync(src);
  writeFileSync(out, bytes.subarray(0, Math.floor(bytes.length * fraction)));
  return out;
}

/** d0.mp4 with its index first (faststart), cut in half: it probes fine and breaks mid-decode. */
export async function makeMidStreamTruncatedVideo(dir: string): Promise<string> {
  const fast = join(dir, 'd0-faststart.mp4');
  await ffmpeg(['-i', sharedPath('data', 'videos', 'd0.mp4'), '-c', 'copy', '-movflags', '+faststart', fast]);
  return truncateFile(fast, join(dir, 'd0-faststart-half.mp4'));
}
