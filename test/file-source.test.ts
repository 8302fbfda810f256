// The file source with the real ffmpeg: every frame exactly once with its media time, sampling, ffmpeg
// paused while the pipeline holds `maxPending` frames, frames-then-error on a truncated file, and cleanup.
import { execFileSync, spawnSync } from 'node:child_process';
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lastValueFrom, take, tap, toArray } from 'rxjs';
import { afterAll, describe, expect, it } from 'vitest';
import { IngestError } from '../src/errors.js';
import { createFileSource } from '../src/ingest/file-source.js';
import type { Frame } from '../src/types.js';
import { sharedPath } from './helpers/shared.js';
import { drain } from './helpers/sources.js';
import { makeMidStreamTruncatedVideo, tempDir } from './helpers/videos.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function countFrames(path: string): number {
  const out = execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', path], {
    encoding: 'utf8',
  });
  return Number(out.trim());
}

describe('createFileSource', () => {
  it('emits every frame of d0.mp4 once, in order, with pts = index / fps', async () => {
    const path = sharedPath('data', 'videos', 'd0.mp4');
    const source = createFileSource({ path, streamId: 'd0' });
    const info = await source.info();
    const { frames, error } = await drain(source);
    expect(error).toBeUndefined();
    expect(frames).toHaveLength(countFrames(path));
    frames.forEach((f, i) => {
      expect(f.frameId).toBe(i);
      expect(f.pts).toBeCloseTo(i / info.fps!, 9);
      expect(f).toMatchObject({ streamId: 'd0', width: 512, height: 512 });
      expect(f.data.length).toBe(512 * 512 * 3);
    });
    expect(frames[frames.length - 1]!.pts).toBeLessThan(info.duration!);
  });

  it('cuts frames exactly at frame boundaries, many frames per pipe chunk (odd size, byte-exact vs ffmpeg)', async () => {
    // 33×17 RGB frames are 1683 bytes, so pipe chunks hold many frames and split them anywhere.
    const small = join(tmp.dir, 'odd.mkv');
    execFileSync('ffmpeg', ['-nostdin', '-v', 'error', '-y', '-i', sharedPath('data', 'videos', 'd0.mp4'), '-vf', 'scale=33:17', '-frames:v', '60', '-c:v', 'ffv1', '-pix_fmt', 'bgr0', small]);
    const expected = execFileSync('ffmpeg', ['-nostdin', '-v', 'error', '-i', small, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], { maxBuffer: 1 << 26 });
    const source = createFileSource({ path: small, maxPending: 2 });
    const { frames, error } = await drain(source);
    expect(error).toBeUndefined();
    expect(frames).toHaveLength(60);
    expect(Buffer.concat(frames.map((f) => f.data)).equals(expected)).toBe(true);
  });

  it('reuseBuffers: later frames go into released frames\' buffers, never into a frame still held', async () => {
    const path = sharedPath('data', 'videos', 'd0.mp4');
    const plain = await drain(createFileSource({ path }));
    const source = createFileSource({ path, maxPending: 3, reuseBuffers: true });
    const buffers = new Set<ArrayBufferLike>();
    const copies: Buffer[] = [];
    let held: { frame: Frame; copy: Buffer } | undefined;
    await new Promise<void>((resolve, reject) => {
      source.frames().subscribe({
        next: (f) => {
          buffers.add(f.data.buffer);
          copies.push(Buffer.from(f.data));
          // the first frame stays out to the end: its pixels must survive every later frame
          if (f.frameId === 0) held = { frame: f, copy: Buffer.from(f.data) };
          else source.release(f);
        },
        error: reject,
        complete: resolve,
      });
    });
    expect(held!.frame.data.equals(held!.copy)).toBe(true);
    expect(copies).toHaveLength(plain.frames.length);
    copies.forEach((c, i) => expect(c.equals(plain.frames[i]!.data)).toBe(true));
    // one held, at most two out otherwise, one being filled: four buffers for the whole file
    expect(buffers.size).toBeLessThanOrEqual(4);
  });

  it('samples with --sample-fps: fewer frames, pts at the sampling rate', async () => {
    const path = sharedPath('data', 'videos', 'd3.mp4');
    const source = createFileSource({ path, sampleFps: 5 });
    const info = await source.info();
    const { frames, error } = await drain(source);
    expect(error).toBeUndefined();
    expect(frames.length).toBeGreaterThanOrEqual(Math.floor(info.duration! * 5));
    expect(frames.length).toBeLessThanOrEqual(Math.ceil(info.duration! * 5) + 1);
    frames.forEach((f, i) => expect(f.pts).toBeCloseTo(i / 5, 9));
    // distinct pictures, not one frame repeated
    expect(frames[0]!.data.equals(frames[10]!.data)).toBe(false);
  });

  it('does not upsample: a sample rate above the source rate gives every frame once', async () => {
    const path = sharedPath('data', 'videos', 'd0.mp4');
    const { frames } = await drain(createFileSource({ path, sampleFps: 100 }));
    expect(frames).toHaveLength(countFrames(path));
  });

  it('holds ffmpeg while maxPending frames are out, loses nothing, and resumes on release', async () => {
    const path = sharedPath('data', 'videos', 'd0.mp4');
    const total = countFrames(path);
    const source = createFileSource({ path, maxPending: 2 });
    const held: Frame[] = [];
    let outstanding = 0;
    let maxOutstanding = 0;
    const seen: number[] = [];
    const done = new Promise<void>((resolve, reject) => {
      source.frames().subscribe({
        next: (f) => {
          seen.push(f.frameId);
          held.push(f);
          outstanding++;
          maxOutstanding = Math.max(maxOutstanding, outstanding);
        },
        error: reject,
        complete: resolve,
      });
    });
    // Nobody releases: the source stops at 2 however long we wait.
    await sleep(1500);
    expect(seen).toEqual([0, 1]);
    // A slow consumer: release one frame every few ms, oldest first.
    let finished = false;
    void done.then(() => (finished = true));
    while (!finished || held.length > 0) {
      const f = held.shift();
      if (f) {
        outstanding--;
        source.release(f);
        source.release(f); // releasing twice must not open a second slot
      }
      await sleep(3);
    }
    await done;
    expect(maxOutstanding).toBeLessThanOrEqual(2);
    expect(seen).toEqual(Array.from({ length: total }, (_, i) => i));
  });

  it('on a file truncated mid-stream: emits the frames decoded so far, then CS_ERR_TRUNCATED with the cause', async () => {
    const path = await makeMidStreamTruncatedVideo(tmp.dir);
    const { frames, error } = await drain(createFileSource({ path }));
    expect(frames.length).toBeGreaterThan(10);
    expect(frames.length).toBeLessThan(78);
    for (const f of frames) expect(f.data.length).toBe(512 * 512 * 3);
    expect(error).toBeInstanceOf(IngestError);
    const e = error as IngestError;
    expect(e.code).toBe('CS_ERR_TRUNCATED');
    expect(e.source).toBe(path);
    expect(e.message).toContain(path);
    expect(e.message).toMatch(/partial file|corrupt|Invalid/);
    expect(e.message.split('\n')).toHaveLength(1);
  });

  it('errors with CS_ERR_INPUT_MISSING for a missing file', async () => {
    const path = join(tmp.dir, 'missing.mp4');
    const { frames, error } = await drain(createFileSource({ path }));
    expect(frames).toHaveLength(0);
    expect(error).toMatchObject({ code: 'CS_ERR_INPUT_MISSING', message: `no such file: ${path}` });
  });

  it('errors with CS_ERR_NOT_A_VIDEO for a text file renamed .mp4', async () => {
    const path = join(tmp.dir, 'text.mp4');
    writeFileSync(path, 'hello\n'.repeat(100));
    const { frames, error } = await drain(createFileSource({ path }));
    expect(frames).toHaveLength(0);
    expect(error).toBeInstanceOf(IngestError);
    expect((error as IngestError).code).toBe('CS_ERR_NOT_A_VIDEO');
    expect((error as IngestError).message).toContain(path);
  });

  it('is cold: each subscription decodes from the start', async () => {
    const source = createFileSource({ path: sharedPath('data', 'videos', 'd0.mp4') });
    const take3 = () => lastValueFrom(source.frames().pipe(tap((f) => source.release(f)), take(3), toArray()));
    const [a, b] = [await take3(), await take3()];
    expect(a.map((f) => f.frameId)).toEqual([0, 1, 2]);
    expect(b.map((f) => f.frameId)).toEqual([0, 1, 2]);
    expect(a[2]!.data.equals(b[2]!.data)).toBe(true);
  });

  it('kills ffmpeg when the subscriber leaves', async () => {
    // A uniquely named link lets us find this ffmpeg among the others on the machine.
    const link = join(tmp.dir, `kill-me-${process.pid}.mp4`);
    symlinkSync(sharedPath('data', 'videos', 'd3.mp4'), link);
    const running = (): boolean => spawnSync('pgrep', ['-f', link]).status === 0;
    const source = createFileSource({ path: link, maxPending: 2 });
    let first: Frame | undefined;
    const sub = source.frames().subscribe((f) => (first ??= f));
    for (let i = 0; i < 100 && first === undefined; i++) await sleep(50);
    expect(first?.frameId).toBe(0);
    expect(running()).toBe(true); // paused mid-file, waiting for releases
    sub.unsubscribe();
    for (let i = 0; i < 40 && running(); i++) await sleep(50);
    expect(running()).toBe(false);
  });
});
