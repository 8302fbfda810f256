// `evaluate --save-crops DIR`: every crop the model saw, as PNG, plus DIR/crops.csv saying where each came from
// and how it was framed (detector box, the cropSquare region, eye keypoints), so the trainer can re-crop the
// sources with the pipeline's exact framing. Images without a crop go to DIR/not-found.csv.
// A research export: face images are written to disk only when the user asks for it with --save-crops.
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import sharp from 'sharp';
import { EXPRESSIONS } from '../types.js';
import type { Sample } from './datasets.js';
import type { CropRecord } from './evaluate-set.js';

export const CROP_COLUMNS = [
  'crop',
  'label',
  'domain',
  'group',
  'source',
  'box_x',
  'box_y',
  'box_w',
  'box_h',
  'crop_x',
  'crop_y',
  'crop_side',
  'right_eye_x',
  'right_eye_y',
  'left_eye_x',
  'left_eye_y',
  'predicted',
  ...EXPRESSIONS.map((e) => `p_${e}`),
] as const;

export const NOT_FOUND_COLUMNS = ['source', 'label', 'domain', 'group', 'reason'] as const;

export function csvField(v: string | number | undefined): string {
  if (v === undefined) return '';
  const s = typeof v === 'number' ? String(Math.round(v * 1000) / 1000) : v;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export class CropExporter {
  readonly dir: string;
  readonly #crops: WriteStream;
  readonly #notFound: WriteStream;
  count = 0;

  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
    this.#crops = createWriteStream(join(dir, 'crops.csv'));
    this.#notFound = createWriteStream(join(dir, 'not-found.csv'));
    this.#crops.write(CROP_COLUMNS.join(',') + '\n');
    this.#notFound.write(NOT_FOUND_COLUMNS.join(',') + '\n');
  }

  async write(r: CropRecord): Promise<void> {
    const rel = join(safeName(r.domain), r.sample.rel.slice(0, r.sample.rel.length - extname(r.sample.rel).length) + '.png');
    const path = join(this.dir, rel);
    mkdirSync(dirname(path), { recursive: true });
    await sharp(r.rgb, { raw: { width: r.size, height: r.size, channels: 3 } }).png().toFile(path);
    const row = [
      rel,
      r.sample.label,
      r.domain,
      r.sample.group,
      r.sample.source,
      r.box.x,
      r.box.y,
      r.box.width,
      r.box.height,
      r.region.x,
      r.region.y,
      r.region.width,
      r.rightEye?.x,
      r.rightEye?.y,
      r.leftEye?.x,
      r.leftEye?.y,
      r.predicted,
      ...Array.from(r.probabilities, (p) => Math.round(p * 1e5) / 1e5),
    ];
    this.#crops.write(row.map(csvField).join(',') + '\n');
    this.count++;
  }

  async notFound(sample: Sample, domain: string, reason: string): Promise<void> {
    this.#notFound.write([sample.source, sample.label, domain, sample.group, reason].map(csvField).join(',') + '\n');
  }

  async close(): Promise<void> {
    await Promise.all([this.#crops, this.#notFound].map((s) => new Promise<void>((res, rej) => s.end((err?: Error | null) => (err ? rej(err) : res())))));
  }
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '_');
}
