// probeFile against the real ffprobe: what it reports for the shared clips, and the one-line errors for
// inputs that are missing, not videos, or cut short.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IngestError } from '../src/errors.js';
import { probeFile } from '../src/ingest/probe.js';
import { sharedPath } from './helpers/shared.js';
import { tempDir, truncateFile } from './helpers/videos.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

async function probeError(path: string): Promise<IngestError> {
  const err = await probeFile(path).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(IngestError);
  return err as IngestError;
}

describe('probeFile', () => {
  it.each(['d0.mp4', 's13.mp4'])('reports what ffprobe reports for %s', async (name) => {
    const path = sharedPath('data', 'videos', name);
    const cli = execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=width,height,r_frame_rate', '-of', 'csv=p=0', path], {
      encoding: 'utf8',
    })
      .trim()
      .split(',');
    const [num, den] = cli[2]!.split('/').map(Number);
    const info = await probeFile(path, 'cam');
    expect(info).toMatchObject({ streamId: 'cam', source: path, kind: 'file', clock: 'media', width: Number(cli[0]), height: Number(cli[1]) });
    expect(info.fps).toBeCloseTo(num! / den!, 6);
    expect(info.duration).toBeGreaterThan(1);
  });

  it('defaults the stream id to the file name', async () => {
    expect((await probeFile(sharedPath('data', 'videos', 'd0.mp4'))).streamId).toBe('d0.mp4');
  });

  it('names a missing file', async () => {
    const path = join(tmp.dir, 'nope.mp4');
    const err = await probeError(path);
    expect(err.code).toBe('CS_ERR_INPUT_MISSING');
    expect(err.message).toBe(`no such file: ${path}`);
  });

  it('says a text file renamed .mp4 is not a video, with ffprobe’s reason', async () => {
    const path = join(tmp.dir, 'notes.mp4');
    writeFileSync(path, 'these are not the frames you are looking for\n'.repeat(20));
    const err = await probeError(path);
    expect(err.code).toBe('CS_ERR_NOT_A_VIDEO');
    expect(err.message).toContain(path);
    expect(err.message).toMatch(/Invalid data found when processing input/);
    expect(err.message.split('\n')).toHaveLength(1);
  });

  it('says a still image is not a video', async () => {
    const err = await probeError(sharedPath('data', 'images', 'white.png'));
    expect(err.code).toBe('CS_ERR_NOT_A_VIDEO');
    expect(err.message).toMatch(/still .*image/);
  });

  it('calls an MP4 cut before its index truncated', async () => {
    // The shared clips keep their index (moov) at the end, so `head -c` of one has none.
    const path = truncateFile(sharedPath('data', 'videos', 'd0.mp4'), join(tmp.dir, 'd0-half.mp4'));
    const err = await probeError(path);
    expect(err.code).toBe('CS_ERR_TRUNCATED');
    expect(err.message).toContain(path);
    expect(err.message).toMatch(/moov atom not found/);
  });
});
