// What a detection interval costs in recall, on the shared clips (not a test; prints a table):
//
//   npx tsx bench/detect-interval.ts [clips…] [--intervals 1,2,3,4,5,6,8] [--sample-fps N] [--json]
//
// Each clip is decoded once and the detector runs on every frame: those detections are the reference. Then the
// detection schedule (src/pipeline/detect-track.ts: interval N, early re-detection, tracker carrying the boxes)
// is replayed over the same frames for each N, handing it the stored detections on the frames where it asks
// for the detector, so every N sees the same detector output and only the schedule differs. Per N:
//   detector share   frames the detector ran on / frames
//   recall           reference faces (every-frame detection, minus the tracker's unconfirmed first hits) that
//                    the scheduled run reports with IoU ≥ 0.5, / those faces
//   mean IoU         of the reported box with the reference box, over the matched faces
//   early            re-detections before the interval was due, by reason
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { lastValueFrom, tap, toArray } from 'rxjs';
import { createFileSource } from '../src/ingest/file-source.js';
import { loadFaceDetector } from '../src/model/face-detector.js';
import { DetectionSchedule } from '../src/pipeline/detect-track.js';
import { iou } from '../src/geometry.js';
import { FaceTracker } from '../src/pipeline/track.js';
import type { Detection, Frame } from '../src/types.js';
import { sharedPath } from '../test/helpers/shared.js';
import { loadavg, cpus } from 'node:os';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { intervals: { type: 'string', default: '1,2,3,4,5,6,8' }, 'sample-fps': { type: 'string' }, json: { type: 'boolean', default: false } },
});
const intervals = values.intervals.split(',').map(Number);
const sampleFps = values['sample-fps'] === undefined ? undefined : Number(values['sample-fps']);
const clips = positionals.length > 0 ? positionals : ['d0.mp4', 'd3.mp4', 'd12.mp4', 'd18.mp4', 's13.mp4'].map((c) => sharedPath('data', 'videos', c));

interface Row {
  clip: string;
  interval: number;
  frames: number;
  detectorShare: number;
  recall: number;
  meanIoU: number;
  early: Record<string, number>;
}

async function decode(path: string): Promise<Frame[]> {
  const source = createFileSource({ path, maxPending: 8, ...(sampleFps === undefined ? {} : { sampleFps }) });
  await source.info();
  const frames: Frame[] = [];
  await lastValueFrom(
    source.frames().pipe(
      tap((f) => {
        frames.push({ ...f, data: Buffer.from(f.data) });
        source.release(f);
      }),
      toArray(),
    ),
  );
  return frames;
}

async function main(): Promise<void> {
  const detector = await loadFaceDetector();
  const rows: Row[] = [];
  process.stderr.write(`detect-interval: ${cpus().length} CPUs, load ${loadavg()[0]!.toFixed(2)}; detector ${detector.name}\n`);
  for (const clip of clips) {
    const frames = await decode(clip);
    const reference: Detection[][] = [];
    for (const f of frames) reference.push(await detector.detect(f));
    // reference faces = what the every-frame tracker reports (its unconfirmed first hits are not output anyway)
    const refTracker = new FaceTracker();
    const refFaces = frames.map((f, i) => refTracker.update(f.pts, reference[i]!).faces.map((x) => x.box));
    for (const n of intervals) {
      const schedule = new DetectionSchedule({ interval: n });
      let total = 0;
      let matched = 0;
      let iouSum = 0;
      frames.forEach((f, i) => {
        const plan = schedule.plan(f);
        const faces = plan.detect ? schedule.detected(f, reference[i]!).faces : plan.faces;
        for (const ref of refFaces[i]!) {
          total++;
          const best = Math.max(0, ...faces.map((x) => iou(x.box, ref)));
          if (best >= 0.5) {
            matched++;
            iouSum += best;
          }
        }
      });
      rows.push({
        clip: basename(clip),
        interval: n,
        frames: frames.length,
        detectorShare: schedule.counts.detections / frames.length,
        recall: total === 0 ? NaN : matched / total,
        meanIoU: matched === 0 ? NaN : iouSum / matched,
        early: { ...schedule.counts.early },
      });
    }
    process.stderr.write(`${basename(clip)}: ${frames.length} frames\n`);
  }
  detector.close();
  if (values.json) {
    process.stdout.write(`${JSON.stringify(rows)}\n`);
    return;
  }
  const pct = (x: number): string => (Number.isFinite(x) ? `${(100 * x).toFixed(1)} %` : '–');
  process.stdout.write(`sample fps: ${sampleFps ?? 'all frames'}\nclip       N  frames  detector  recall   mean IoU  early (young/drift/leaving/motion)\n`);
  for (const r of rows) {
    const e = r.early;
    process.stdout.write(
      `${r.clip.padEnd(9)} ${String(r.interval).padStart(2)}  ${String(r.frames).padStart(6)}  ${pct(r.detectorShare).padStart(8)}  ${pct(r.recall).padStart(7)}  ${r.meanIoU.toFixed(3).padStart(8)}  ${e['young']}/${e['drift']}/${e['leaving']}/${e['motion']}\n`,
    );
  }
  for (const n of intervals) {
    const rs = rows.filter((r) => r.interval === n);
    const frames = rs.reduce((s, r) => s + r.frames, 0);
    const w = (k: 'detectorShare' | 'recall' | 'meanIoU'): number => rs.reduce((s, r) => s + r[k] * r.frames, 0) / frames;
    process.stdout.write(`all clips  ${String(n).padStart(2)}  ${String(frames).padStart(6)}  ${pct(w('detectorShare')).padStart(8)}  ${pct(w('recall')).padStart(7)}  ${w('meanIoU').toFixed(3).padStart(8)}\n`);
  }
}

await main();
