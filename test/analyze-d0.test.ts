// The product's headline check, with the trained models in models/: d0.mp4 (neutral → broad smile → neutral)
// gives a happiness segment in the middle, neutral around it. Fails until the trained models are exported.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit-codes.js';
import type { FaceSegmentEvent, TimelineEvent } from '../src/types.js';
import { parseJsonl, runCli } from './helpers/cli.js';
import { realModelsDir } from './helpers/models.js';
import { assertValidEvents } from './helpers/schema.js';
import { sharedPath } from './helpers/shared.js';
import { tempDir } from './helpers/videos.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('cafe-stream analyze d0.mp4 with the trained models', () => {
  it('finds one face whose timeline is neutral → happiness → neutral', async () => {
    const out = join(tmp.dir, 'd0.jsonl');
    const r = await runCli(['analyze', sharedPath('data', 'videos', 'd0.mp4'), '--out', out, '--models', realModelsDir(), '--device', 'cpu']);
    expect(r.code, r.stderr).toBe(EXIT.ok);
    expect(r.stderr).toMatch(/^d0\.mp4\s+t1\s/m); // the summary table has the track
    const events = parseJsonl(readFileSync(out, 'utf8')) as unknown as TimelineEvent[];
    assertValidEvents(events);

    expect(events.filter((e) => e.type === 'track.start')).toHaveLength(1);
    const segments = events.filter((e): e is FaceSegmentEvent => e.type === 'face.segment');
    const labels = segments.map((s) => s.label);
    expect(labels).toContain('happiness');
    const happy = segments.filter((s) => s.label === 'happiness');
    // The smile is in the middle of the 3.1 s clip: its segment neither starts the track nor ends it.
    const first = happy[0]!;
    const last = happy[happy.length - 1]!;
    expect(first.start).toBeGreaterThan(0.2);
    expect(last.end).toBeLessThan(3.0);
    expect(labels[0]).toBe('neutral');
    expect(labels[labels.length - 1]).toBe('neutral');
    // And it is a clear reading, not a coin toss.
    expect(first.meanProbabilities.happiness).toBeGreaterThan(0.5);
  });

  it('--detector-runtime tfjs (the package on tfjs-wasm) and --model-threads 0 (the model on the main thread) give the default timeline', async () => {
    const runs = [];
    const settings = [
      { name: 'default', args: [], line: /detector mediapipe-full@640 \(thread\)/, model: / on cpu \(2 model threads[;)]/ },
      { name: 'tfjs', args: ['--detector-runtime', 'tfjs'], line: /detector mediapipe-full@640 \(tfjs\) \(thread\)/, model: / on cpu \(2 model threads[;)]/ },
      { name: 'main-thread', args: ['--model-threads', '0'], line: /detector mediapipe-full@640 \(thread\)/, model: / on cpu($| \((?!\d+ model thread))/m },
    ];
    for (const s of settings) {
      const out = join(tmp.dir, `d0-${s.name}.jsonl`);
      const r = await runCli(['analyze', sharedPath('data', 'videos', 'd0.mp4'), '--out', out, '--models', realModelsDir(), '--device', 'cpu', ...s.args]);
      expect(r.code, r.stderr).toBe(EXIT.ok);
      // the info lines name the detector (only the package's runtime says so) and where the model reads
      expect(r.stderr).toMatch(s.line);
      expect(r.stderr).toMatch(s.model);
      runs.push(parseJsonl(readFileSync(out, 'utf8')) as unknown as TimelineEvent[]);
    }
    const segments = runs.map((events) => events.filter((e): e is FaceSegmentEvent => e.type === 'face.segment').map((s) => [s.label, s.start, s.end]));
    expect(segments[0]!.length).toBeGreaterThan(0);
    expect(segments[1]).toEqual(segments[0]);
    expect(segments[2]).toEqual(segments[0]);
    for (const [flag, value] of [['--detector-runtime', 'tflite'], ['--model-threads', '-1'], ['--model-threads', '1.5']] as const) {
      const bad = await runCli(['analyze', sharedPath('data', 'videos', 'd0.mp4'), flag, value]);
      expect(bad.code).toBe(EXIT.usage);
      expect(bad.stderr).toContain(flag);
    }
  });
});
