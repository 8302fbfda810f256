// Helpers shared by the view tests (report, annotate, dashboard): run the real CLI, read its JSONL, launch
// Debian's Chromium, and decode single frames with ffmpeg.
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type Browser, chromium } from 'playwright-core';
import type { TimelineEvent } from '../../src/types.js';

const exec = promisify(execFile);

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const artifactsDir = join(repoRoot, 'test-artifacts');

export async function artifactPath(name: string): Promise<string> {
  await mkdir(artifactsDir, { recursive: true });
  return join(artifactsDir, name);
}

function hasHead(dir: string): boolean {
  if (!existsSync(dir)) return false;
  return readdirSync(dir)
    .filter((f) => f.endsWith('.onnx.json'))
    .some((f) => (JSON.parse(readFileSync(join(dir, f), 'utf8')) as { role?: string }).role === 'head');
}

/** The shipped models (models/); fails loudly when the trainer's head model has not landed. */
export function realModelsDir(): string {
  const dir = join(repoRoot, 'models');
  if (!hasHead(dir)) throw new Error(`no head model manifest in ${dir}: the trained models have not landed yet`);
  return dir;
}

/**
 * Models for structural checks (boxes, pages, frame counts), where the labels don't matter: the shipped
 * models when present, else the tiny test models (test/fixtures/make-tiny-models.py → .cache/tiny-models).
 */
export async function anyModelsDir(): Promise<string> {
  const real = join(repoRoot, 'models');
  if (hasHead(real)) return real;
  const tiny = join(repoRoot, '.cache', 'tiny-models');
  if (!hasHead(tiny)) {
    const script = join(repoRoot, 'test', 'fixtures', 'make-tiny-models.py');
    if (!existsSync(script)) throw new Error(`neither models/ nor ${script} is available`);
    const python = join(repoRoot, 'trainer', '.venv', 'bin', 'python');
    await exec(existsSync(python) ? python : 'python3', [script, tiny], { cwd: repoRoot, timeout: 300_000 });
  }
  if (!hasHead(tiny)) throw new Error(`make-tiny-models.py did not write a head manifest into ${tiny}`);
  return tiny;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `cafe-stream <args>` from source (tsx), as a user would, and waits for it to exit. */
export function runCli(args: string[], timeoutMs = 300_000): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'cli', 'main.ts'), ...args], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('error', reject);
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

export function readJsonl(path: string): TimelineEvent[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as TimelineEvent);
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    headless: true,
  });
}

export interface ProbeCounts {
  frames: number;
  duration: number;
  width: number;
  height: number;
  audioStreams: number;
}

/** Frames counted by decoding (not the container's claim), video duration, and audio stream count. */
export async function probeCounts(path: string): Promise<ProbeCounts> {
  const { stdout } = await exec('ffprobe', [
    '-v', 'error', '-count_frames', '-show_entries', 'stream=codec_type,nb_read_frames,duration,width,height', '-of', 'json', path,
  ]);
  const streams = (JSON.parse(stdout) as { streams: { codec_type: string; nb_read_frames?: string; duration?: string; width?: number; height?: number }[] }).streams;
  const v = streams.find((s) => s.codec_type === 'video');
  if (!v) throw new Error(`${path} has no video stream`);
  return {
    frames: Number(v.nb_read_frames),
    duration: Number(v.duration),
    width: v.width ?? 0,
    height: v.height ?? 0,
    audioStreams: streams.filter((s) => s.codec_type === 'audio').length,
  };
}

/** Frame `index` (0-based, decode order) of a video as packed RGB24. */
export async function decodeFrame(path: string, index: number, width: number, height: number): Promise<Buffer> {
  const { stdout } = await exec(
    'ffmpeg',
    ['-v', 'error', '-i', path, '-vf', `select=eq(n\\,${index})`, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
    { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 },
  );
  if (stdout.length !== width * height * 3) throw new Error(`frame ${index} of ${path}: got ${stdout.length} bytes`);
  return stdout;
}
