// Labelled image sets for `cafe-stream evaluate`, given on the command line as `layout:path` (optionally
// `name=layout:path` to name the domain). Each layout becomes a list of samples: the image's absolute path, its
// label in our seven classes, a group (performer / subject, for performer-disjoint splits downstream) and, for
// FER+, the face box the set provides. Label rules mirror trainer/cafe_models/datasets.py and classes.py, so the
// TypeScript and Python sides count the same images.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, relative, resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import { EXPRESSIONS, type Box, type Expression } from '../types.js';

export const LAYOUTS = ['taiwanese', 'csv', 'folder', 'ferplus', 'clips'] as const;
export type Layout = (typeof LAYOUTS)[number];

export const IMAGE_SUFFIXES = ['.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff'];

export interface Sample {
  /** absolute path of the image. */
  source: string;
  /** path relative to the set's root (for naming exported crops). */
  rel: string;
  label: Expression;
  /** performer / subject id when the layout has one, else ''. */
  group: string;
  /** face box the set provides (FER+ label.csv), image pixels. */
  box?: Box;
}

/** A `clips:` set's videos are scored through the video pipeline, not as photos (eval/clips.ts). */
export const isClipSet = (d: Pick<Dataset, 'layout'>): boolean => d.layout === 'clips';

export interface Dataset {
  /** short name used in tables, JSON and crop folders. */
  domain: string;
  layout: Layout;
  /** the spec as given. */
  spec: string;
  root: string;
  /** the images are face crops already: no detector runs. */
  crops: boolean;
  samples: Sample[];
}

/** Class names and synonyms (lower case), as trainer/cafe_models/classes.py CLASS_NAMES. */
const CLASS_NAMES: Record<string, Expression> = {
  surprise: 'surprise',
  surprised: 'surprise',
  fear: 'fear',
  fearful: 'fear',
  afraid: 'fear',
  scared: 'fear',
  disgust: 'disgust',
  disgusted: 'disgust',
  happiness: 'happiness',
  happy: 'happiness',
  sadness: 'sadness',
  sad: 'sadness',
  anger: 'anger',
  angry: 'anger',
  neutral: 'neutral',
};

export function classFromName(name: string): Expression | undefined {
  return CLASS_NAMES[name.trim().toLowerCase()];
}

/** Taiwanese facial expression set: 5th character of the file name. '0' (unlabelled) and anything else: none. */
const TAIWANESE_CODES: Record<string, Expression> = {
  a: 'neutral',
  b: 'happiness',
  c: 'sadness',
  d: 'anger',
  e: 'disgust',
  f: 'fear',
  g: 'surprise',
};

export function taiwaneseLabel(fileName: string): Expression | undefined {
  return TAIWANESE_CODES[fileName.charAt(4).toLowerCase()];
}

/** FER+ label.csv vote columns, in file order after `file, box`. */
export const FERPLUS_VOTE_COLUMNS = ['neutral', 'happiness', 'surprise', 'sadness', 'anger', 'disgust', 'fear', 'contempt', 'unknown', 'NF'] as const;

/**
 * The trainer's `majority` protocol: the column with the most votes; a tie for the top, or no votes, drops the
 * image; a contempt / unknown / not-a-face winner drops it too.
 */
export function ferplusMajority(votes: readonly number[]): Expression | undefined {
  const max = Math.max(...votes);
  if (!(max > 0)) return undefined;
  const top = votes.flatMap((v, i) => (v === max ? [i] : []));
  if (top.length !== 1) return undefined;
  return classFromName(FERPLUS_VOTE_COLUMNS[top[0]!] ?? '');
}

/**
 * Subject id from a file name `<subject>_<n>.<ext>` (BUAA: `buaa-55_24.jpg` → `buaa-55`); '' when the stem has
 * no underscore.
 */
export function groupFromPath(path: string): string {
  const stem = basename(path, extname(path));
  const cut = stem.lastIndexOf('_');
  return cut > 0 ? stem.slice(0, cut) : '';
}

export function parseDatasetSpec(spec: string): { name?: string; layout: Layout; path: string } {
  let rest = spec;
  let name: string | undefined;
  const eq = spec.indexOf('=');
  const colon = spec.indexOf(':');
  if (eq > 0 && (colon < 0 || eq < colon)) {
    name = spec.slice(0, eq);
    rest = spec.slice(eq + 1);
  }
  const sep = rest.indexOf(':');
  const layout = rest.slice(0, sep);
  const path = rest.slice(sep + 1);
  if (sep < 0 || path === '' || !(LAYOUTS as readonly string[]).includes(layout)) {
    throw new ConfigError('dataset', `${spec}: expected [name=]LAYOUT:PATH with LAYOUT one of ${LAYOUTS.join(', ')}`);
  }
  return { ...(name ? { name } : {}), layout: layout as Layout, path };
}

export interface LoadOptions {
  /** treat every image as a face crop (no detector), whatever the layout. */
  asCrops?: boolean;
}

/** Reads a set's index (not its pixels); a missing folder or malformed index is a ConfigError naming the path. */
export function loadDataset(spec: string, opts: LoadOptions = {}): Dataset {
  const { name, layout, path } = parseDatasetSpec(spec);
  const root = resolve(path);
  let samples: Sample[];
  let domain: string;
  switch (layout) {
    case 'taiwanese':
      samples = loadTaiwanese(requireDir(root, spec));
      // …/taiwanese/faces_256x256 → "taiwanese": the set's own folder, not its resolution.
      domain = /^faces_/.test(basename(root)) ? basename(dirname(root)) : basename(root);
      break;
    case 'csv':
      samples = loadCsv(requireFile(root, spec));
      domain = basename(dirname(root));
      break;
    case 'clips':
      // a missing or broken clip is reported with its cause when it is run, and the other clips still count
      samples = loadCsv(requireFile(root, spec), { requireFiles: false });
      domain = basename(dirname(root));
      break;
    case 'folder':
      samples = loadFolder(requireDir(root, spec));
      domain = basename(root);
      break;
    case 'ferplus':
      samples = loadFerplus(requireDir(root, spec));
      domain = basename(root);
      break;
  }
  if (samples.length === 0) throw new ConfigError('dataset', `${spec}: no labelled images (none of the seven classes)`);
  return { domain: name ?? domain, layout, spec, root: layout === 'csv' || layout === 'clips' ? dirname(root) : root, crops: layout === 'ferplus' || opts.asCrops === true, samples };
}

function requireDir(path: string, spec: string): string {
  if (!existsSync(path) || !statSync(path).isDirectory()) throw new ConfigError('dataset', `${spec}: no such folder: ${path}`);
  return path;
}

function requireFile(path: string, spec: string): string {
  if (!existsSync(path) || !statSync(path).isFile()) throw new ConfigError('dataset', `${spec}: no such file: ${path}`);
  return path;
}

function isImage(name: string): boolean {
  return IMAGE_SUFFIXES.includes(extname(name).toLowerCase());
}

function loadTaiwanese(root: string): Sample[] {
  const out: Sample[] = [];
  for (const f of readdirSync(root).sort()) {
    if (!isImage(f)) continue;
    const label = taiwaneseLabel(f);
    if (label === undefined) continue;
    out.push({ source: join(root, f), rel: f, label, group: f.slice(0, 2) });
  }
  return out;
}

/**
 * `path,label[,group]` rows; group defaults to the file stem before its last '_'. A third column names the
 * group (clips.csv's `source`: the repository or camera a clip came from).
 */
function loadCsv(csvPath: string, opts: { requireFiles?: boolean } = {}): Sample[] {
  const base = dirname(csvPath);
  const out: Sample[] = [];
  const lines = readFileSync(csvPath, 'utf8').split(/\r?\n/);
  lines.forEach((line, i) => {
    if (line.trim() === '' || line.startsWith('#')) return;
    const [p, l, g] = line.split(',').map((s) => s.trim());
    if (p === undefined || l === undefined) throw new ConfigError('dataset', `${csvPath}:${i + 1}: expected \`path,label\`, got ${line}`);
    if (i === 0 && p.toLowerCase() === 'path') return;
    const label = /^\d+$/.test(l) ? canonicalIndex(Number(l), csvPath, i + 1) : classFromName(l);
    if (label === undefined) return; // contempt and other classes outside the seven
    const source = isAbsolute(p) ? p : join(base, p);
    if (opts.requireFiles !== false && !existsSync(source)) throw new ConfigError('dataset', `${csvPath}:${i + 1}: image not found: ${source}`);
    out.push({ source, rel: relative(base, source), label, group: g || groupFromPath(p) });
  });
  return out;
}

function canonicalIndex(i: number, csvPath: string, line: number): Expression {
  const e = EXPRESSIONS[i];
  if (e === undefined) throw new ConfigError('dataset', `${csvPath}:${line}: numeric label ${i} outside 0..6 (${EXPRESSIONS.join(', ')})`);
  return e;
}

function loadFolder(root: string): Sample[] {
  const out: Sample[] = [];
  for (const sub of readdirSync(root).sort()) {
    const dir = join(root, sub);
    if (!statSync(dir).isDirectory()) continue;
    const label = classFromName(sub);
    if (label === undefined) continue;
    for (const f of walk(dir)) if (isImage(f)) out.push({ source: f, rel: relative(root, f), label, group: '' });
  }
  return out;
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

function loadFerplus(root: string): Sample[] {
  const index = join(root, 'label.csv');
  if (!existsSync(index)) throw new ConfigError('dataset', `ferplus:${root}: no label.csv`);
  const out: Sample[] = [];
  readFileSync(index, 'utf8')
    .split(/\r?\n/)
    .forEach((line, i) => {
      if (line.trim() === '') return;
      // file,"(x, y, w, h)",10 votes
      const m = /^([^,]+),"?\(?\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+)\s*\)?"?,(.*)$/.exec(line);
      const votes = m?.[6]?.split(',').map(Number);
      if (!m || !votes || votes.length !== FERPLUS_VOTE_COLUMNS.length || votes.some((v) => !Number.isInteger(v) || v < 0)) {
        throw new ConfigError('dataset', `${index}:${i + 1}: expected file, box, 10 votes`);
      }
      const label = ferplusMajority(votes);
      if (label === undefined) return;
      const file = m[1]!;
      out.push({
        source: join(root, file),
        rel: file,
        label,
        group: '',
        box: { x: Number(m[2]), y: Number(m[3]), width: Number(m[4]), height: Number(m[5]) },
      });
    });
  return out;
}

/** `n` samples spread evenly over the set (so a quick run still sees every performer and class). */
export function spreadLimit<T>(items: readonly T[], n: number | undefined): T[] {
  if (n === undefined || n >= items.length) return [...items];
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(items[Math.floor((i * items.length) / n)]!);
  return out;
}
