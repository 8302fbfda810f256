// A track's expression timeline as inline SVG, rendered in Node so the report needs no script and
// no network to show its charts. Seven probability lines over time, the smoothed label band below.
import { EXPRESSIONS } from '../types.js';
import { EXPRESSION_COLORS } from './palette.js';
import type { LabelRun, TrackView } from './timeline-model.js';
import { labelRuns } from './timeline-model.js';

export interface ChartOptions {
  /** time range of the x axis (seconds), shared by all tracks of a stream so charts line up. */
  start: number;
  end: number;
  width?: number;
}

const PLOT_H = 150;
const BAND_H = 16;
const AXIS_H = 18;
const LEFT = 34;
const RIGHT = 8;
const TOP = 6;

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

/** m:ss.s, the way a video player shows media time. */
export function formatTime(seconds: number): string {
  const sign = seconds < 0 ? '-' : '';
  const s = Math.abs(seconds);
  const m = Math.floor(s / 60);
  const rest = s - m * 60;
  return `${sign}${m}:${rest.toFixed(1).padStart(4, '0')}`;
}

function tickStep(range: number): number {
  const steps = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
  return steps.find((s) => range / s <= 10) ?? 7200;
}

/** Points per line, at most about one per pixel: long tracks stay light without losing their shape. */
function decimate(times: number[], values: number[], maxPoints: number): { t: number[]; v: number[] } {
  if (times.length <= maxPoints) return { t: times, v: values };
  const t: number[] = [];
  const v: number[] = [];
  const per = times.length / maxPoints;
  for (let b = 0; b < maxPoints; b++) {
    const from = Math.floor(b * per);
    const to = Math.min(times.length, Math.floor((b + 1) * per));
    let st = 0;
    let sv = 0;
    for (let i = from; i < to; i++) {
      st += times[i]!;
      sv += values[i]!;
    }
    const n = to - from;
    if (n > 0) {
      t.push(st / n);
      v.push(sv / n);
    }
  }
  return { t, v };
}

export function renderTrackChart(track: TrackView, opts: ChartOptions): string {
  const width = opts.width ?? 960;
  const plotW = width - LEFT - RIGHT;
  const height = TOP + PLOT_H + 4 + BAND_H + AXIS_H;
  const span = Math.max(opts.end - opts.start, 1e-6);
  const x = (t: number): number => LEFT + ((t - opts.start) / span) * plotW;
  const y = (p: number): number => TOP + (1 - p) * PLOT_H;
  const f = (n: number): string => n.toFixed(1);

  const times = track.observations.map((o) => o.time);
  // A gap much longer than the usual spacing is a time the face was not seen: don't draw across it.
  const spacings = times.slice(1).map((t, i) => t - times[i]!).sort((a, b) => a - b);
  const typical = spacings[Math.floor(spacings.length / 2)] ?? 0;
  const maxGap = Math.max(typical * 5, 0.5);

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="expression timeline of track ${escapeXml(track.trackId)}">`,
  );
  // grid and y labels
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    parts.push(`<line x1="${LEFT}" x2="${LEFT + plotW}" y1="${f(y(p))}" y2="${f(y(p))}" class="grid"/>`);
    parts.push(`<text x="${LEFT - 4}" y="${f(y(p) + 3)}" class="ylab">${p.toFixed(2).replace(/0$/, '')}</text>`);
  }
  for (const expr of EXPRESSIONS) {
    const values = track.observations.map((o) => o.probabilities[expr]);
    const d = decimate(times, values, Math.max(50, Math.floor(plotW)));
    let path = '';
    for (let i = 0; i < d.t.length; i++) {
      const cmd = i === 0 || d.t[i]! - d.t[i - 1]! > maxGap ? 'M' : 'L';
      path += `${cmd}${f(x(d.t[i]!))} ${f(y(d.v[i]!))}`;
    }
    if (path) {
      parts.push(
        `<path d="${path}" fill="none" stroke="${EXPRESSION_COLORS[expr]}" stroke-width="1.6" data-expression="${expr}"><title>${expr}</title></path>`,
      );
    }
  }
  const bandY = TOP + PLOT_H + 4;
  for (const run of labelRuns(track)) parts.push(bandRect(run, x, bandY));
  // time axis
  const axisY = bandY + BAND_H + 13;
  const step = tickStep(span);
  for (let t = Math.ceil(opts.start / step) * step; t <= opts.end + 1e-9; t += step) {
    parts.push(`<text x="${f(x(t))}" y="${axisY}" class="xlab">${formatTime(t)}</text>`);
  }
  parts.push('</svg>');
  return parts.join('');
}

function bandRect(run: LabelRun, x: (t: number) => number, bandY: number): string {
  const x0 = x(run.start);
  // a one-observation run still gets a visible sliver
  const w = Math.max(x(run.end) - x0, 2);
  const title = `${run.label} ${formatTime(run.start)}–${formatTime(run.end)}`;
  return `<rect x="${x0.toFixed(1)}" y="${bandY}" width="${w.toFixed(1)}" height="${BAND_H}" fill="${EXPRESSION_COLORS[run.label]}" data-label="${run.label}"><title>${escapeXml(title)}</title></rect>`;
}

/** The colour key under the charts. */
export function renderLegend(): string {
  return EXPRESSIONS.map(
    (e) => `<span class="key"><span class="swatch" style="background:${EXPRESSION_COLORS[e]}"></span>${e}</span>`,
  ).join(' ');
}
