// `analyze --annotate out.mp4`: after the run, a second ffmpeg pass re-reads the input and burns in each
// face's box, track id and smoothed label (see ass.ts for why as subtitles). ffmpeg keeps every input frame
// and its timestamp (passthrough), re-encodes video with libx264 and copies the audio untouched.
import { spawn } from 'node:child_process';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join, resolve } from 'node:path';
import { IngestError, SinkError } from '../errors.js';
import type { TimelineEvent } from '../types.js';
import { buildAss } from './ass.js';
import { buildTimeline } from './timeline-model.js';

export interface AnnotateOptions {
  input: string;
  output: string;
  /** libx264 constant rate factor (quality); default 20. */
  crf?: number;
  /** libx264 preset; default "veryfast". */
  preset?: string;
  ffmpegPath?: string;
  ffprobePath?: string;
}

export interface AnnotateResult {
  output: string;
  tracks: number;
  observations: number;
}

interface VideoProbe {
  width: number;
  height: number;
  fps: number;
  startTime: number;
}

export async function annotateVideo(events: TimelineEvent[], opts: AnnotateOptions): Promise<AnnotateResult> {
  const input = resolve(opts.input);
  const output = resolve(opts.output);
  const probe = await probeVideo(input, opts.ffprobePath ?? 'ffprobe');
  const streams = [...buildTimeline(events).values()];
  // analyze runs one file per stream; if events hold several, draw the one whose source is this input
  const stream = streams.length === 1 ? streams[0] : streams.find((s) => s.info && resolve(s.info.source) === input);
  const tracks = stream ? [...stream.tracks.values()] : [];
  const ass = buildAss(tracks, {
    width: stream?.info?.width ?? probe.width,
    height: stream?.info?.height ?? probe.height,
    fps: stream?.info?.fps ?? probe.fps,
    offset: probe.startTime,
  });

  const dir = await mkdtemp(join(tmpdir(), 'cafe-annotate-'));
  const partial = `${output}.partial${extname(output) || '.mp4'}`;
  try {
    await writeFile(join(dir, 'faces.ass'), ass);
    // cwd is the temp dir, so the filter names the script without any filtergraph path escaping
    const args = [
      '-nostdin', '-hide_banner', '-loglevel', 'error', '-y',
      '-i', input,
      '-map', '0:v:0', '-map', '0:a?',
      '-vf', 'ass=faces.ass',
      '-fps_mode', 'passthrough',
      '-c:v', 'libx264', '-preset', opts.preset ?? 'veryfast', '-crf', String(opts.crf ?? 20), '-pix_fmt', 'yuv420p',
      '-c:a', 'copy',
      '-movflags', '+faststart',
      partial,
    ];
    await runFfmpeg(opts.ffmpegPath ?? 'ffmpeg', args, dir);
    await rename(partial, output);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { output, tracks: tracks.length, observations: tracks.reduce((n, t) => n + t.observations.length, 0) };
}

function runFfmpeg(bin: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const proc = spawn(bin, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    const tail: string[] = [];
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) if (line.trim()) tail.push(line.trim());
      tail.splice(0, Math.max(0, tail.length - 10));
    });
    proc.on('error', (err) =>
      reject(new SinkError('annotate', `cannot run ffmpeg for --annotate: ${err.message}`, { cause: err })),
    );
    proc.on('close', (code, signal) => {
      if (code === 0) resolvePromise();
      else {
        const why = tail[tail.length - 1] ?? `exit ${code ?? signal}`;
        // the input decoded fine during the analysis: a failure here is about writing the output
        reject(new SinkError('annotate', `writing the annotated video failed: ${why}`));
      }
    });
  });
}

async function probeVideo(input: string, bin: string): Promise<VideoProbe> {
  const json = await new Promise<string>((resolvePromise, reject) => {
    const proc = spawn(
      bin,
      ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=width,height,r_frame_rate,start_time', '-of', 'json', input],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    proc.on('error', (e) => reject(new IngestError('CS_ERR_FFMPEG_EXIT', input, `cannot run ffprobe: ${e.message}`, { cause: e })));
    proc.on('close', (code) =>
      code === 0
        ? resolvePromise(out)
        : reject(new IngestError('CS_ERR_NOT_A_VIDEO', input, `not a video: ${input} (${err.trim().split('\n')[0] ?? 'ffprobe failed'})`)),
    );
  });
  const s = (JSON.parse(json) as { streams?: { width?: number; height?: number; r_frame_rate?: string; start_time?: string }[] })
    .streams?.[0];
  if (!s?.width || !s.height) throw new IngestError('CS_ERR_NOT_A_VIDEO', input, `not a video: ${input} (no video stream)`);
  const [num, den] = (s.r_frame_rate ?? '25/1').split('/').map(Number);
  const fps = num && den ? num / den : 25;
  const startTime = Number(s.start_time);
  return { width: s.width, height: s.height, fps, startTime: Number.isFinite(startTime) ? startTime : 0 };
}
