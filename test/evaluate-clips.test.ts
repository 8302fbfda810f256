// `cafe-stream evaluate clips:` end to end on a tiny clip set made from the shared clips: the shipped models
// read two clear clips through analyze's own path, a clip without a face, a truncated file, a file that is
// not a video and a missing one each land where they belong, and a peer reads the same main-track crops.
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mainTrack } from '../src/eval/clips.js';
import type { DomainMetrics } from '../src/eval/metrics.js';
import { dominantExpression } from '../src/pipeline/timeline.js';
import { EXPRESSIONS, type Expression, type TrackEndEvent } from '../src/types.js';
import { runCli } from './helpers/cli.js';
import { REAL_MODELS_DIR } from './helpers/models.js';
import { sharedPath } from './helpers/shared.js';
import { makeStillVideo, tempDir, truncateFile } from './helpers/videos.js';

const tmp = tempDir();

interface ClipJson {
  source: string;
  label: Expression;
  dominant?: Expression;
  meanArgmax?: Expression;
  tracks: number;
  frames: number;
  error?: string;
  peer?: { frequent: Expression | null; meanArgmax: Expression | null };
}
type ClipSetJson = DomainMetrics & {
  domain: string;
  noFace: number;
  unreadable: { source: string; reason: string }[];
  nonNeutral: number;
  nonNeutralAsNeutral: number;
  meanArgmax: DomainMetrics;
  peer?: DomainMetrics & { name: string; nonNeutralAsNeutral: number };
  perClip: ClipJson[];
};

const clip = (name: string): string => sharedPath('data', 'clips', name);
let csv: string;

beforeAll(async () => {
  copyFileSync(clip('facial-emotion-analyzer_happy.mp4'), join(tmp.dir, 'happy.mp4'));
  copyFileSync(clip('facial-emotion-analyzer_surprise.mp4'), join(tmp.dir, 'surprise.mp4'));
  await makeStillVideo(sharedPath('data', 'images', 'white.png'), join(tmp.dir, 'empty.mkv'), 10);
  // the index of these mp4s is at the end: the first 20 % probes as nothing
  truncateFile(clip('mcse-er_happy.mp4'), join(tmp.dir, 'truncated.mp4'), 0.2);
  writeFileSync(join(tmp.dir, 'notes.mp4'), 'not a video at all\n');
  csv = join(tmp.dir, 'labels.csv');
  writeFileSync(
    csv,
    'path,label,source\nhappy.mp4,happiness,fea\nsurprise.mp4,surprised,fea\nempty.mkv,neutral,synthetic\n' +
      'truncated.mp4,happiness,mcse\nnotes.mp4,anger,synthetic\nmissing.mp4,sadness,synthetic\n',
  );
}, 60_000);
afterAll(() => tmp.cleanup());

describe('evaluate clips: (shipped models, real detector and ffmpeg)', () => {
  let set: ClipSetJson;
  let stderr: string;

  beforeAll(async () => {
    const r = await runCli(['evaluate', `clips:${csv}`, '--json', '--sample-fps', '5', '--models', REAL_MODELS_DIR, '--device', 'cpu'], { timeoutMs: 240_000 });
    stderr = r.stderr;
    expect(r.code, r.stderr).toBe(0);
    set = (JSON.parse(r.stdout) as { clips: ClipSetJson[] }).clips[0]!;
  }, 250_000);

  it('reads the clear clips off the main track', () => {
    const byName = (n: string): ClipJson => set.perClip.find((c) => c.source.endsWith(n))!;
    expect(byName('happy.mp4').dominant).toBe('happiness');
    expect(byName('surprise.mp4').dominant).toBe('surprise');
    expect(byName('happy.mp4').tracks).toBeGreaterThanOrEqual(1);
    // --sample-fps 5 is honoured: the 5 s clip gives about 25 frames, not its 125
    expect(byName('happy.mp4').frames).toBeGreaterThan(15);
    expect(byName('happy.mp4').frames).toBeLessThan(40);
    expect(set.n).toBe(2);
    expect(set.accuracy).toBe(1);
  });

  it('counts a clip without a face apart from the clips that could not be read', () => {
    expect(set.images).toBe(6);
    expect(set.noFace).toBe(1);
    const empty = set.perClip.find((c) => c.source.endsWith('empty.mkv'))!;
    expect(empty.tracks).toBe(0);
    expect(empty.error).toBeUndefined();
    expect(empty.dominant).toBeUndefined();
    const reasons = Object.fromEntries(set.unreadable.map((u) => [u.source.split('/').at(-1), u.reason]));
    expect(Object.keys(reasons).sort()).toEqual(['missing.mp4', 'notes.mp4', 'truncated.mp4']);
    expect(reasons['missing.mp4']).toMatch(/no such file/);
    expect(reasons['notes.mp4']).toMatch(/not a video|invalid data/i);
    expect(stderr).toMatch(/unreadable: 3/);
  });

  it('counts non-neutral clips read as neutral over the clips with a label other than neutral', () => {
    expect(set.nonNeutral).toBe(5);
    expect(set.nonNeutralAsNeutral).toBe(0);
    expect(set.meanArgmax.n).toBe(2);
  });
});

describe('evaluate clips: --peer', () => {
  it('scores face-api.js on the main track crops of the same sampled frames', async () => {
    const one = join(tmp.dir, 'one.csv');
    writeFileSync(one, 'happy.mp4,happiness\nempty.mkv,neutral\n');
    const r = await runCli(['evaluate', `clips:${one}`, '--json', '--sample-fps', '5', '--models', REAL_MODELS_DIR, '--device', 'cpu', '--peer', 'faceapi'], { timeoutMs: 240_000 });
    expect(r.code, r.stderr).toBe(0);
    const set = (JSON.parse(r.stdout) as { clips: ClipSetJson[] }).clips[0]!;
    expect(set.peer?.name).toMatch(/faceapi/);
    expect(set.peer?.n).toBe(1);
    const happy = set.perClip.find((c) => c.source.endsWith('happy.mp4'))!;
    expect(happy.peer?.frequent).toBe('happiness');
    expect(set.perClip.find((c) => c.source.endsWith('empty.mkv'))!.peer?.frequent).toBeNull();
  }, 250_000);

  it('refuses --save-crops for clips with a config error', async () => {
    const r = await runCli(['evaluate', `clips:${csv}`, '--save-crops', join(tmp.dir, 'crops')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--save-crops is for photo sets only, not clips/);
  });
});

describe('dominant expression of a track', () => {
  const secs = (m: Partial<Record<Expression, number>>): number[] => EXPRESSIONS.map((e) => m[e] ?? 0);
  const flat = secs({});

  it('is the longest-held non-neutral label once it holds the share', () => {
    expect(dominantExpression(secs({ neutral: 7, anger: 3 }), flat, 0.2)).toBe('anger');
    expect(dominantExpression(secs({ neutral: 9, anger: 1 }), flat, 0.2)).toBe('neutral');
    expect(dominantExpression(secs({ neutral: 5, anger: 2, sadness: 3 }), flat, 0.2)).toBe('sadness');
  });

  it('share 1 is the plain longest label', () => {
    expect(dominantExpression(secs({ neutral: 7, anger: 3 }), flat, 1)).toBe('neutral');
    expect(dominantExpression(secs({ happiness: 3, neutral: 1 }), flat, 1)).toBe('happiness');
  });

  it('a one-frame track is read from its mean probabilities', () => {
    expect(dominantExpression(flat, secs({ neutral: 0.7, fear: 0.3 }), 0.2)).toBe('fear');
    expect(dominantExpression(flat, secs({ neutral: 0.9, fear: 0.1 }), 0.2)).toBe('neutral');
  });
});

describe('main track of a clip', () => {
  const end = (trackId: string, duration: number, observations: number): TrackEndEvent =>
    ({ type: 'track.end', trackId, summary: { duration, observations } }) as unknown as TrackEndEvent;

  it('is the track seen longest, then the most observed', () => {
    expect(mainTrack([end('t1', 1, 10), end('t2', 3, 5), end('t3', 2, 50)])?.trackId).toBe('t2');
    expect(mainTrack([end('t1', 2, 10), end('t2', 2, 12)])?.trackId).toBe('t2');
    expect(mainTrack([])).toBeUndefined();
  });
});
