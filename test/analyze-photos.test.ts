// `cafe-stream analyze` on photos and folders: a photo is a stream of one frame through the same detector,
// crop and model as video; bad photos fail like bad videos (one line, the same exit codes); in a folder run a
// bad file is named and the others still complete.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit-codes.js';
import { parseJsonl, runCli } from './helpers/cli.js';
import { testModelsDir } from './helpers/models.js';
import { assertValidEvents } from './helpers/schema.js';
import { sharedPath } from './helpers/shared.js';
import { tempDir, truncateFile } from './helpers/videos.js';

const tmp = tempDir();
let models: string;

beforeAll(async () => {
  models = await testModelsDir();
});
afterAll(() => tmp.cleanup());

async function analyze(inputs: string[], name: string, extra: string[] = []): Promise<{ code: number | null; stderr: string; events: Record<string, unknown>[] }> {
  const out = join(tmp.dir, `${name}.jsonl`);
  const r = await runCli(['analyze', ...inputs, '--out', out, '--models', models, '--device', 'cpu', ...extra]);
  const events = parseJsonl(readFileSync(out, 'utf8'));
  assertValidEvents(events);
  return { code: r.code, stderr: r.stderr, events };
}

const ofType = (events: Record<string, unknown>[], type: string, streamId?: string): Record<string, unknown>[] =>
  events.filter((e) => e['type'] === type && (streamId === undefined || e['streamId'] === streamId));

describe('analyze: photos', () => {
  it('a photo with one face: one stream of one frame, one face.observation', async () => {
    const r = await analyze([sharedPath('data', 'images', 'surprised.jpg')], 'one');
    expect(r.code, r.stderr).toBe(EXIT.ok);
    expect(r.events[0]).toMatchObject({ type: 'stream.start', stream: { kind: 'file', duration: 0, width: 500, height: 333 } });
    expect(ofType(r.events, 'face.observation')).toHaveLength(1);
    expect(ofType(r.events, 'face.observation')[0]).toMatchObject({ time: 0, frameId: 0 });
    expect(r.events.at(-1)).toMatchObject({ type: 'stream.end', reason: 'eof', frames: 1, tracks: 1 });
    expect(r.stderr).toContain('surprised.jpg');
  });

  it('faces.jpg: six faces, six observations, six tracks closed', async () => {
    const r = await analyze([sharedPath('data', 'images', 'faces.jpg')], 'six', ['--quiet']);
    expect(r.code, r.stderr).toBe(EXIT.ok);
    const obs = ofType(r.events, 'face.observation');
    expect(obs).toHaveLength(6);
    expect(new Set(obs.map((o) => o['trackId'])).size).toBe(6);
    expect(ofType(r.events, 'track.end')).toHaveLength(6);
  });

  it('a tight face crop (face1.png, face edge to edge): found by the photo path\'s padded retry', async () => {
    const r = await analyze([sharedPath('data', 'images', 'face1.png')], 'tight', ['--quiet']);
    expect(r.code, r.stderr).toBe(EXIT.ok);
    const obs = ofType(r.events, 'face.observation');
    expect(obs).toHaveLength(1);
    // the box comes back in the photo's own pixels: it covers most of the 150 px picture
    const box = obs[0]!['box'] as { x: number; y: number; width: number; height: number };
    expect(box.width).toBeGreaterThan(75);
    expect(box.x + box.width / 2).toBeGreaterThan(40);
    expect(box.x + box.width / 2).toBeLessThan(110);
  });

  it('white.png: no face is not an error (as for a video without faces): exit 0, no observation', async () => {
    const r = await analyze([sharedPath('data', 'images', 'white.png')], 'white');
    expect(r.code, r.stderr).toBe(EXIT.ok);
    expect(ofType(r.events, 'face.observation')).toHaveLength(0);
    expect(r.events.map((e) => e['type'])).toEqual(['stream.start', 'stream.end']);
    expect(r.stderr).toContain('no faces found');
  });

  it.each([
    ['zero-byte', 'empty.jpg', (p: string) => writeFileSync(p, ''), EXIT.notAVideo, /not an image: .*empty\.jpg \(empty file\)/],
    ['corrupt JPEG (cut in half)', 'cut.jpg', (p: string) => truncateFile(sharedPath('data', 'images', 'faces.jpg'), p), EXIT.decode, /truncated image: .*cut\.jpg/],
    [
      'a PNG whose pixel data is damaged (its header reads)',
      'damaged.png',
      (p: string) => {
        const png = readFileSync(sharedPath('data', 'images', 'white.png'));
        const idat = png.indexOf('IDAT');
        for (let i = idat + 8; i < Math.min(png.length - 12, idat + 40); i++) png[i] = png[i]! ^ 0x5a;
        writeFileSync(p, png);
      },
      EXIT.decode,
      /damaged image: .*damaged\.png \(a png header, \d+×\d+, whose pixel data does not decode/,
    ],
    ['a text file named .jpg', 'notes.jpg', (p: string) => writeFileSync(p, 'not a photo\n'.repeat(20)), EXIT.notAVideo, /not an image: .*notes\.jpg/],
    ['a missing photo', 'missing.jpg', () => undefined, EXIT.inputMissing, /no such file: .*missing\.jpg/],
  ])('%s: one error line, its exit code, stream.end with the cause', async (_name, file, make, code, line) => {
    const path = join(tmp.dir, file);
    make(path);
    const r = await analyze([path], `bad-${file}`, ['--quiet']);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^cafe-stream: error: /);
    expect(lines[0]).toMatch(line);
    expect(r.code).toBe(code);
    expect(r.events).toHaveLength(1);
    expect(r.events[0]).toMatchObject({ type: 'stream.end', reason: 'error' });
  });
});

describe('analyze: a folder of photos and videos', () => {
  it('good files complete, the bad one is named, the exit code is the bad file’s', async () => {
    const dir = join(tmp.dir, 'mixed');
    mkdirSync(dir);
    copyFileSync(sharedPath('data', 'images', 'angry.jpg'), join(dir, 'a-photo.jpg'));
    copyFileSync(sharedPath('data', 'videos', 'd0.mp4'), join(dir, 'b-clip.mp4'));
    truncateFile(sharedPath('data', 'images', 'surprised.jpg'), join(dir, 'c-broken.jpg'));
    writeFileSync(join(dir, 'notes.txt'), 'skipped: neither photo nor video\n');
    const r = await analyze([dir], 'mixed', ['--jobs', '2', '--sample-fps', '4']);
    expect(r.code, r.stderr).toBe(EXIT.decode);
    // truncated, or damaged when libvips' reason is lost beside a concurrent decode ("Unknown error"): the exit code is the same
    expect(r.stderr).toMatch(/cafe-stream: error: (truncated|damaged) image: .*c-broken\.jpg/);
    expect(r.stderr).toMatch(/2 of 3 files analysed/);
    const ends = Object.fromEntries(ofType(r.events, 'stream.end').map((e) => [e['streamId'], e['reason']]));
    expect(ends).toEqual({ 'a-photo.jpg': 'eof', 'b-clip.mp4': 'eof', 'c-broken.jpg': 'error' });
    expect(ofType(r.events, 'face.observation', 'a-photo.jpg')).toHaveLength(1);
    expect(ofType(r.events, 'face.observation', 'b-clip.mp4').length).toBeGreaterThan(5);
    expect(r.events.some((e) => String(e['streamId']).includes('notes'))).toBe(false);
  });
});
