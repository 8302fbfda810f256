// Face boxes and labels as an ASS subtitle script, for ffmpeg's libass `ass` filter to burn in.
//
// Why subtitles and not one drawbox/drawtext filter per observation: a filter chain with one filter per
// observation makes every frame pass through every filter (observations × frames work, and one font load
// per drawtext), which stops scaling after a few minutes of video. libass only renders the events active at
// a frame's time, handles any number of them, shapes text with fontconfig fonts, and keeps ffmpeg in charge
// of timing, so the output has exactly the input's frames.
import type { FaceObservationEvent } from '../types.js';
import { EXPRESSION_COLORS } from './palette.js';
import type { TrackView } from './timeline-model.js';

export interface AssOptions {
  width: number;
  height: number;
  /** source frame rate: how long the last observation of a track stays drawn. */
  fps: number;
  /** added to every event time: the input's video start_time, so media time 0 is the first frame. */
  offset?: number;
  font?: string;
}

/** Box outline thickness in pixels for a frame of this size (also used by tests to find the outline). */
export function boxThickness(width: number, height: number): number {
  return Math.max(2, Math.round(Math.min(width, height) / 170));
}

export function buildAss(tracks: Iterable<TrackView>, opts: AssOptions): string {
  const fontSize = Math.max(12, Math.round(opts.height / 32));
  const font = opts.font ?? 'DejaVu Sans';
  const lines: string[] = [
    '[Script Info]',
    'ScriptType: v4.00+',
    `PlayResX: ${opts.width}`,
    `PlayResY: ${opts.height}`,
    'ScaledBorderAndShadow: yes',
    'WrapStyle: 2',
    '',
    '[V4+ Styles]',
    'Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding',
    // boxes: filled shapes, no outline or shadow, so the drawn pixels are exactly the shape
    `Style: Box,${font},${fontSize},&H00FFFFFF,&H00FFFFFF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,0,0,7,0,0,0,1`,
    // labels: white text on an opaque dark box (BorderStyle 3) so they read on any background
    `Style: Label,${font},${fontSize},&H00FFFFFF,&H00FFFFFF,&H60000000,&H60000000,-1,0,0,0,100,100,0,0,3,2,0,1,0,0,0,1`,
    '',
    '[Events]',
    'Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text',
  ];
  const th = boxThickness(opts.width, opts.height);
  const offset = opts.offset ?? 0;
  for (const track of tracks) {
    const obs = track.observations;
    const hold = holdSeconds(obs, opts.fps);
    for (let i = 0; i < obs.length; i++) {
      const o = obs[i]!;
      const next = obs[i + 1];
      const start = o.time + offset;
      // stay drawn until the next observation (sampled runs), but not across a gap where the face was lost
      const end = next && next.time - o.time <= hold ? next.time + offset : start + hold;
      const a = assTime(start);
      const b = assTime(end);
      if (a === b) continue; // above 100 fps two frames can share a centisecond: skip rather than mis-time
      const color = assColor(EXPRESSION_COLORS[o.label]);
      lines.push(`Dialogue: 0,${a},${b},Box,,0,0,0,,{\\an7\\pos(0,0)\\1c${color}\\p1}${outline(o, th, opts)}{\\p0}`);
      const label = `${escapeAss(track.trackId)} ${o.label} ${o.confidence.toFixed(2)}`;
      // label above the box, or inside its top edge when the box touches the top of the frame
      const above = o.box.y - th - fontSize * 1.3 >= 0;
      const lx = Math.round(clamp(o.box.x, 0, opts.width - 1));
      const ly = Math.round(above ? o.box.y - th - 2 : o.box.y + th + fontSize + 4);
      lines.push(`Dialogue: 1,${a},${b},Label,,0,0,0,,{\\pos(${lx},${ly})\\3c${color}\\4c${color}}${label}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** How long an observation stays drawn when no next one follows soon: 2.5 × the track's usual spacing. */
function holdSeconds(obs: FaceObservationEvent[], fps: number): number {
  const gaps = obs.slice(1).map((o, i) => o.time - obs[i]!.time).sort((x, y) => x - y);
  const typical = gaps[Math.floor(gaps.length / 2)] ?? 1 / fps;
  return Math.max(typical, 1 / fps) * 2.5;
}

/** The box outline as four filled rectangles (ASS drawing commands in frame pixels), outside-aligned. */
function outline(o: FaceObservationEvent, th: number, frame: { width: number; height: number }): string {
  const x0 = clamp(Math.round(o.box.x) - th, 0, frame.width);
  const y0 = clamp(Math.round(o.box.y) - th, 0, frame.height);
  const x1 = clamp(Math.round(o.box.x + o.box.width) + th, 0, frame.width);
  const y1 = clamp(Math.round(o.box.y + o.box.height) + th, 0, frame.height);
  const rect = (ax: number, ay: number, bx: number, by: number): string => `m ${ax} ${ay} l ${bx} ${ay} ${bx} ${by} ${ax} ${by}`;
  return [
    rect(x0, y0, x1, y0 + th),
    rect(x0, y1 - th, x1, y1),
    rect(x0, y0, x0 + th, y1),
    rect(x1 - th, y0, x1, y1),
  ].join(' ');
}

/** h:mm:ss.cc, floored to the centisecond so an event never starts after the frame it belongs to. */
export function assTime(seconds: number): string {
  const cs = Math.floor(Math.max(0, seconds) * 100 + 1e-6);
  const h = Math.floor(cs / 360000);
  const m = Math.floor(cs / 6000) % 60;
  const s = Math.floor(cs / 100) % 60;
  return `${h}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}.${String(cs % 100).padStart(2, '0')}`;
}

/** "#rrggbb" → ASS "&HBBGGRR&". */
function assColor(hex: string): string {
  const r = hex.slice(1, 3);
  const g = hex.slice(3, 5);
  const b = hex.slice(5, 7);
  return `&H${b}${g}${r}&`.toUpperCase();
}

function escapeAss(s: string): string {
  return s.replace(/[{}\\]/g, '');
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}
