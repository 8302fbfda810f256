// `cafe-stream evaluate` end to end on tiny fixtures made from the shared photos: the real detector, the test
// models, three layouts in one run, the metrics JSON, and the crop export whose framing must be the pipeline's.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit-codes.js';
import type { DomainMetrics } from '../src/eval/metrics.js';
import { loadImageFrame } from '../src/ingest/image.js';
import { cropFace, cropSquare } from '../src/pipeline/crop.js';
import { EXPRESSIONS } from '../src/types.js';
import { runCli } from './helpers/cli.js';
import { testModelsDir } from './helpers/models.js';
import { sharedPath } from './helpers/shared.js';
import { tempDir } from './helpers/videos.js';

const tmp = tempDir();
let models: string;

/** one domain of `evaluate --json`: the metrics module's figures and the set's name. */
type DomainJson = DomainMetrics & { domain: string };
interface EvalJson {
  classifier: string;
  cropSize: number;
  cropScale: number;
  domains: DomainJson[];
}

const img = (name: string): string => sharedPath('data', 'images', name);

/** Taiwanese-style names (5th character = class), a tiny csv set and a tiny FER+ folder. */
function makeFixtures(): { tw: string; csv: string; fer: string } {
  const tw = join(tmp.dir, 'tw');
  mkdirSync(tw);
  copyFileSync(img('angry.jpg'), join(tw, '0101d01.jpg')); // anger
  copyFileSync(img('surprised.jpg'), join(tw, '0201g01.jpg')); // surprise
  copyFileSync(img('faces.jpg'), join(tw, '0301a01.jpg')); // neutral (six faces: the largest is scored)
  copyFileSync(img('white.png'), join(tw, '0401b01.png')); // happiness, but no face in it
  copyFileSync(img('face2.png'), join(tw, '0501001.png')); // unlabelled: skipped
  const set = join(tmp.dir, 'nir');
  mkdirSync(join(set, 'images'), { recursive: true });
  copyFileSync(img('angry.jpg'), join(set, 'images', 'subj-7_22.jpg'));
  copyFileSync(img('surprised.jpg'), join(set, 'images', 'subj-9_24.jpg'));
  copyFileSync(img('face2.png'), join(set, 'images', 'subj-3_26.png')); // a tight crop: found by the padded retry
  writeFileSync(join(set, 'labels.csv'), 'path,label\nimages/subj-7_22.jpg,angry\nimages/subj-9_24.jpg,surprise\nimages/subj-9_24.jpg,contempt\nimages/subj-3_26.png,neutral\n');
  const fer = join(tmp.dir, 'FERtiny');
  mkdirSync(fer);
  copyFileSync(img('face1.png'), join(fer, 'a.png'));
  copyFileSync(img('face2.png'), join(fer, 'b.png'));
  // a: happiness wins; b: neutral ties happiness (dropped); a again as c.png would be missing, so only a and b
  writeFileSync(join(fer, 'label.csv'), 'a.png,"(0, 0, 150, 150)",1,8,0,0,0,0,0,1,0,0\nb.png,"(0, 0, 150, 150)",5,5,0,0,0,0,0,0,0,0\n');
  return { tw, csv: join(set, 'labels.csv'), fer };
}

let fx: ReturnType<typeof makeFixtures>;
let result: { code: number | null; json: EvalJson; stderr: string };
const cropsDir = (): string => join(tmp.dir, 'crops');

beforeAll(async () => {
  models = await testModelsDir();
  fx = makeFixtures();
  const r = await runCli(['evaluate', `taiwanese:${fx.tw}`, `csv:${fx.csv}`, `ferplus:${fx.fer}`, '--models', models, '--device', 'cpu', '--json', '--save-crops', cropsDir()]);
  result = { code: r.code, json: JSON.parse(r.stdout) as EvalJson, stderr: r.stderr };
});
afterAll(() => tmp.cleanup());

function parseCsv(path: string): Record<string, string>[] {
  const [head, ...rows] = readFileSync(path, 'utf8').trimEnd().split('\n');
  const cols = head!.split(',');
  return rows.map((r) => Object.fromEntries(r.split(',').map((v, i) => [cols[i]!, v])));
}

describe('cafe-stream evaluate', () => {
  it('scores each set: faces not found counted, accuracy and confusion agree', () => {
    expect(result.code, result.stderr).toBe(EXIT.ok);
    const [tw, nir, fer] = result.json.domains;
    expect(tw).toMatchObject({ domain: 'tw', images: 4, n: 3, facesNotFound: 1 });
    expect(nir).toMatchObject({ domain: 'nir', images: 3, n: 3, facesNotFound: 0 });
    expect(fer).toMatchObject({ domain: 'FERtiny', images: 1, n: 1, facesNotFound: 0 });
    for (const d of [tw!, nir!, fer!]) {
      const total = d.confusion.flat().reduce((a, b) => a + b, 0);
      const correct = d.confusion.reduce((a, row, i) => a + row[i]!, 0);
      expect(total).toBe(d.n);
      expect(d.accuracy).toBeCloseTo(correct / d.n, 12);
      expect(d.accuracyAll).toBeCloseTo(correct / d.images, 12);
      expect(d.confusion).toHaveLength(EXPRESSIONS.length);
    }
    // true labels land in the right rows
    const row = (d: DomainJson, e: string): number => d.confusion[EXPRESSIONS.indexOf(e as never)]!.reduce((a, b) => a + b, 0);
    expect([row(tw!, 'anger'), row(tw!, 'surprise'), row(tw!, 'neutral'), row(tw!, 'happiness')]).toEqual([1, 1, 1, 0]);
    expect(row(fer!, 'happiness')).toBe(1);
  });

  it('the same figures one crop per batch on the main thread (--model-threads 0) as on model threads, two batches at once', async () => {
    const r = await runCli(['evaluate', `taiwanese:${fx.tw}`, `csv:${fx.csv}`, `ferplus:${fx.fer}`, '--models', models, '--device', 'cpu', '--json', '--model-threads', '0', '--batch-size', '1']);
    expect(r.code, r.stderr).toBe(EXIT.ok);
    const one = JSON.parse(r.stdout) as EvalJson;
    expect(one.domains.map((d) => [d.domain, d.n, d.confusion])).toEqual(result.json.domains.map((d) => [d.domain, d.n, d.confusion]));
  });

  it('--save-crops: one PNG per crop at the crop size, framed exactly as the pipeline frames it', async () => {
    const rows = parseCsv(join(cropsDir(), 'crops.csv'));
    expect(rows).toHaveLength(3 + 3 + 1);
    const size = result.json.cropSize;
    const scale = result.json.cropScale;
    for (const r of rows) {
      const png = join(cropsDir(), r['crop']!);
      const meta = await sharp(png).metadata();
      expect([meta.width, meta.height, meta.channels]).toEqual([size, size, 3]);
      expect(existsSync(r['source']!)).toBe(true);
    }
    const tw = rows.filter((r) => r['domain'] === 'tw');
    expect(tw.map((r) => r['group']).sort()).toEqual(['01', '02', '03']);
    for (const r of tw) {
      const box = { x: Number(r['box_x']), y: Number(r['box_y']), width: Number(r['box_w']), height: Number(r['box_h']) };
      const sq = cropSquare(box, scale);
      expect([sq.x, sq.y, sq.width]).toEqual([Number(r['crop_x']), Number(r['crop_y']), Number(r['crop_side'])]);
      expect(r['right_eye_x']).not.toBe('');
      // Re-cropping the source from the exported box gives the exported pixels (the box is rounded to 3 decimals).
      const frame = await loadImageFrame(r['source']!);
      const again = await cropFace(frame, box, size, scale);
      const saved = await sharp(join(cropsDir(), r['crop']!)).raw().toBuffer();
      let diff = 0;
      for (let i = 0; i < saved.length; i++) diff += Math.abs(saved[i]! - again[i]!);
      expect(diff / saved.length).toBeLessThan(0.5);
    }
    expect(parseCsv(join(cropsDir(), 'crops.csv')).filter((r) => r['domain'] === 'nir').map((r) => r['group']).sort()).toEqual(['subj-3', 'subj-7', 'subj-9']);
    const fer = rows.find((r) => r['domain'] === 'FERtiny')!;
    expect([fer['box_w'], fer['crop_side'], fer['right_eye_x']]).toEqual(['150', '150', '']);
    const notFound = parseCsv(join(cropsDir(), 'not-found.csv'));
    expect(notFound.map((r) => [r['source']?.endsWith('0401b01.png'), r['label'], r['reason']])).toEqual([[true, 'happiness', 'no face found']]);
  });

  it('a packaged peer reads the same crops (--peer human)', async () => {
    const r = await runCli(['evaluate', `taiwanese:${fx.tw}`, '--models', models, '--peer', 'human', '--json', '--quiet']);
    expect(r.code, r.stderr).toBe(EXIT.ok);
    const j = JSON.parse(r.stdout) as EvalJson;
    expect(j.classifier).toContain('human');
    expect(j.domains[0]).toMatchObject({ images: 4, n: 3, facesNotFound: 1 });
    // the surprised face is the model's easiest case (FER2013's clearest class)
    expect(j.domains[0]!.perClassRecall['surprise']).toBe(1);
  });

  it('a bad set is a usage error naming it', async () => {
    const missing = join(tmp.dir, 'nope');
    const r = await runCli(['evaluate', `folder:${missing}`, '--models', models]);
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr).toContain(missing);
    const bad = await runCli(['evaluate', 'affectnet:/x', '--models', models]);
    expect(bad.code).toBe(EXIT.usage);
    expect(bad.stderr).toMatch(/^cafe-stream: error: .*LAYOUT one of/);
  });
});
