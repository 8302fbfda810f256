// Replays saved timelines (JSONL from `analyze --out`, one file per clip) through the smoother and the timeline
// with other options, and scores the clips as `evaluate clips:` does (main track's `dominant`). The model's raw
// probabilities are in every face.observation, so timeline choices (smoothing, hysteresis, how `dominant` is
// read) can be compared on the same model outputs in seconds instead of re-running the models.
//
//   npx tsx bench/timeline-replay.ts <labels.csv> <dir-of-jsonl> [--options '{"smoothing":{…},"timeline":{…}}']
//
// A clip's JSONL is <dir>/<clip file stem>.jsonl. Prints accuracy, macro recall, non-neutral clips read as
// neutral, and each misread clip.
import { readFileSync, existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { loadDataset } from '../src/eval/datasets.js';
import { mainTrack } from '../src/eval/clips.js';
import { scoreOutcomes, type Outcome } from '../src/eval/metrics.js';
import { resolvePipelineOptions } from '../src/pipeline/options.js';
import { ExpressionSmoother } from '../src/pipeline/smooth.js';
import { TrackTimeline } from '../src/pipeline/timeline.js';
import { EXPRESSIONS, type FaceObservationEvent, type TimelineEvent, type TrackEndEvent } from '../src/types.js';

const [labels, dir, flag, json] = process.argv.slice(2);
if (labels === undefined || dir === undefined) {
  process.stderr.write('usage: timeline-replay.ts <labels.csv> <dir-of-jsonl> [--options JSON]\n');
  process.exit(2);
}
const options = resolvePipelineOptions(flag === '--options' && json ? (JSON.parse(json) as object) : {});

const outcomes: Outcome[] = [];
const misread: string[] = [];
let sink = 0;
for (const clip of loadDataset(`clips:${labels}`).samples) {
  const file = join(dir, basename(clip.source).replace(/\.[^.]+$/, '') + '.jsonl');
  if (!existsSync(file)) {
    outcomes.push({ label: clip.label });
    continue;
  }
  const events = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as TimelineEvent);
  const byTrack = new Map<string, FaceObservationEvent[]>();
  for (const e of events) if (e.type === 'face.observation') byTrack.set(e.trackId, [...(byTrack.get(e.trackId) ?? []), e]);
  const ends: TrackEndEvent[] = [];
  for (const [trackId, obs] of byTrack) {
    const smoother = new ExpressionSmoother(options.smoothing);
    const t = new TrackTimeline('replay', trackId, obs[0]!.time, options.timeline, () => 'id');
    for (const o of obs) {
      const p = EXPRESSIONS.map((c) => o.probabilities[c]);
      const s = smoother.update(o.time, p);
      t.observe(o.time, s.label, p);
    }
    ends.push(...t.end(obs.at(-1)!.time, 'stream.end').filter((e): e is TrackEndEvent => e.type === 'track.end'));
  }
  const main = mainTrack(ends);
  const predicted = main?.summary.dominant;
  outcomes.push(predicted === undefined ? { label: clip.label } : { label: clip.label, predicted });
  if (predicted !== undefined && predicted !== clip.label) misread.push(`${basename(clip.source)} ${clip.label}→${predicted}`);
  if (clip.label !== 'neutral' && predicted === 'neutral') sink++;
}
const m = scoreOutcomes(outcomes);
const nonNeutral = outcomes.filter((o) => o.label !== 'neutral').length;
process.stdout.write(
  `clips ${m.n} of ${m.images}: accuracy ${(100 * m.accuracy).toFixed(1)}%, macro recall ${(100 * m.macroRecall).toFixed(1)}%, ` +
    `non-neutral read as neutral ${sink} of ${nonNeutral}\n  misread: ${misread.join(', ')}\n`,
);
