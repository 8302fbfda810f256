// `analyze --annotate`: the real CLI on a shared clip (with an audio track added), then the output is
// checked with ffprobe and by comparing decoded pixels against the input where the events put the face.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENT_SCHEMA_VERSION, EXPRESSIONS, type FaceObservationEvent, type TimelineEvent } from '../src/types.js';
import { assTime, boxThickness, buildAss } from '../src/views/ass.js';
import { EXPRESSION_COLORS } from '../src/views/palette.js';
import { buildTimeline } from '../src/views/timeline-model.js';
import { sharedPath } from './helpers/shared.js';
import { anyModelsDir, decodeFrame, probeCounts, readJsonl, runCli, type ProbeCounts } from './helpers/views.js';

const exec = promisify(execFile);

describe('analyze --annotate on d0.mp4 (+ audio)', () => {
  let dir: string;
  let input: string;
  let output: string;
  let events: TimelineEvent[];
  let inCounts: ProbeCounts;
  let outCounts: ProbeCounts;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cafe-annotate-test-'));
    input = join(dir, 'in.mp4');
    output = join(dir, 'out.mp4');
    // the shared clip has no audio: add a tone so "audio kept" is checked; video is copied, not re-encoded
    await exec('ffmpeg', [
      '-v', 'error', '-i', sharedPath('data', 'videos', 'd0.mp4'), '-f', 'lavfi', '-i', 'sine=frequency=440:duration=3.12',
      '-map', '0:v', '-map', '1:a', '-c:v', 'copy', '-c:a', 'aac', input,
    ]);
    const models = await anyModelsDir();
    const run = await runCli(['analyze', input, '--models', models, '--out', join(dir, 'events.jsonl'), '--annotate', output]);
    expect(run.code, run.stderr).toBe(0);
    events = readJsonl(join(dir, 'events.jsonl'));
    inCounts = await probeCounts(input);
    outCounts = await probeCounts(output);
  }, 600_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps every frame, the duration, the size and the audio', () => {
    expect(outCounts.frames).toBe(inCounts.frames);
    expect(Math.abs(outCounts.duration - inCounts.duration)).toBeLessThan(0.5 / 25);
    expect([outCounts.width, outCounts.height]).toEqual([inCounts.width, inCounts.height]);
    expect(outCounts.audioStreams).toBe(1);
  });

  it('draws the box in its label colour where the events say the face is, and leaves the face alone', async () => {
    const obs = events.filter((e): e is FaceObservationEvent => e.type === 'face.observation');
    expect(obs.length).toBeGreaterThan(10);
    const o = obs[Math.floor(obs.length / 2)]!;
    const { width: w, height: h } = inCounts;
    const before = await decodeFrame(input, o.frameId, w, h);
    const after = await decodeFrame(output, o.frameId, w, h);
    const th = boxThickness(w, h);
    const px = (buf: Buffer, x: number, y: number): number[] => {
      const i = (Math.min(h - 1, Math.max(0, y)) * w + Math.min(w - 1, Math.max(0, x))) * 3;
      return [buf[i]!, buf[i + 1]!, buf[i + 2]!];
    };
    const dist = (a: number[], b: number[]): number => Math.hypot(a[0]! - b[0]!, a[1]! - b[1]!, a[2]! - b[2]!);

    // points along the middle of the outline's four bands (drawn just outside the box)
    const { x, y, width: bw, height: bh } = o.box;
    const mid = th / 2;
    const outline: [number, number][] = [];
    for (let f = 0.15; f <= 0.85; f += 0.05) {
      outline.push([Math.round(x - mid), Math.round(y + f * bh)], [Math.round(x + bw + mid), Math.round(y + f * bh)]);
      outline.push([Math.round(x + f * bw), Math.round(y + bh + mid)]); // not the top edge: the label sits there
    }
    const inside = outline.filter(([px_, py_]) => px_ >= 0 && py_ >= 0 && px_ < w && py_ < h);
    expect(inside.length).toBeGreaterThan(20);
    const colour = EXPRESSION_COLORS[o.label];
    const target = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
    const meanOut = inside.reduce((s, [a, b]) => s + dist(px(after, a, b), target), 0) / inside.length;
    const meanIn = inside.reduce((s, [a, b]) => s + dist(px(before, a, b), target), 0) / inside.length;
    expect(meanOut).toBeLessThan(60); // the outline is the label's colour (yuv420p blurs chroma a little)
    expect(meanIn).toBeGreaterThan(meanOut + 40); // and was not that colour before

    // the middle of the face is untouched apart from encoding noise
    const centre: [number, number][] = [];
    for (let fx = 0.3; fx <= 0.7; fx += 0.1) for (let fy = 0.3; fy <= 0.7; fy += 0.1) centre.push([Math.round(x + fx * bw), Math.round(y + fy * bh)]);
    const centreDiff = centre.reduce((s, [a, b]) => s + dist(px(after, a, b), px(before, a, b)), 0) / centre.length;
    expect(centreDiff).toBeLessThan(15);
  });
});

describe('annotation timing (pure)', () => {
  const base = (time: number, id: string): Omit<FaceObservationEvent, 'type' | 'trackId' | 'frameId' | 'box' | 'probabilities' | 'label' | 'confidence'> => ({
    id, schemaVersion: EVENT_SCHEMA_VERSION, streamId: 's', time, emittedAt: '2025-01-01T00:00:00Z',
  });
  const obs = (time: number, frameId: number): FaceObservationEvent => ({
    ...base(time, `o${frameId}`),
    type: 'face.observation', trackId: 't1', frameId, box: { x: 10, y: 40, width: 50, height: 50 },
    probabilities: Object.fromEntries(EXPRESSIONS.map((e) => [e, e === 'happiness' ? 0.9 : 0.1 / 6])) as FaceObservationEvent['probabilities'],
    label: 'happiness', confidence: 0.9,
  });

  it('floors times to the centisecond so an event never starts after its frame', () => {
    expect(assTime(1 / 30)).toBe('0:00:00.03');
    expect(assTime(0.08)).toBe('0:00:00.08');
    expect(assTime(3723.456)).toBe('1:02:03.45');
  });

  it('holds a box until the next observation, but not across a gap where the face was lost', () => {
    const events = [obs(0, 0), obs(0.04, 1), obs(0.08, 2), obs(2.0, 50)];
    const ass = buildAss(buildTimeline(events).get('s')!.tracks.values(), { width: 100, height: 100, fps: 25 });
    const boxes = ass.split('\n').filter((l) => l.startsWith('Dialogue: 0,'));
    expect(boxes.map((l) => l.split(',').slice(1, 3).join('-'))).toEqual([
      '0:00:00.00-0:00:00.04',
      '0:00:00.04-0:00:00.08',
      '0:00:00.08-0:00:00.18', // 2.5 × the usual 0.04 s spacing, then the box goes
      '0:00:02.00-0:00:02.10',
    ]);
  });
});
