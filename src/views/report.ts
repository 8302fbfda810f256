// The report for one analysed file: a single self-contained HTML page (inline CSS, inline SVG charts,
// thumbnails as data: URLs) that opens anywhere with no network, so it can be mailed or archived.
import { rename, writeFile } from 'node:fs/promises';
import { SinkError } from '../errors.js';
import { EVENT_SCHEMA_VERSION, EXPRESSIONS } from '../types.js';
import type { ExpressionProbabilities, TimelineEvent } from '../types.js';
import { EXPRESSION_COLORS } from './palette.js';
import { escapeXml as esc, formatTime, renderLegend, renderTrackChart } from './svg-chart.js';
import { buildTimeline, trackSpan } from './timeline-model.js';
import type { StreamView, TrackView } from './timeline-model.js';

export interface ReportOptions {
  out: string;
  /** how the run was configured (CLI options, model manifests); shown as-is. */
  config: Record<string, unknown>;
  /** JPEG per track, keyed "streamId/trackId" (or bare trackId); only given with --thumbnails. */
  thumbnails?: Map<string, Buffer>;
  title?: string;
}

export async function writeReport(events: TimelineEvent[], opts: ReportOptions): Promise<void> {
  const html = renderReport(events, opts);
  // write-then-rename: a crash never leaves a half-written report where a good one was expected
  const tmp = `${opts.out}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, html);
    await rename(tmp, opts.out);
  } catch (err) {
    throw new SinkError('report', `cannot write report ${opts.out}: ${(err as Error).message}`, { cause: err });
  }
}

export function renderReport(events: TimelineEvent[], opts: Omit<ReportOptions, 'out'>): string {
  const streams = [...buildTimeline(events).values()];
  const title =
    opts.title ?? `cafe-stream report: ${streams.map((s) => s.info?.source ?? s.streamId).join(', ') || 'no stream'}`;
  const body: string[] = [];
  body.push(`<header><h1>${esc(title)}</h1>`);
  body.push(
    `<p class="meta">generated ${esc(new Date().toISOString())} · event schema ${esc(EVENT_SCHEMA_VERSION)} · ${events.length} events</p></header>`,
  );
  for (const s of streams) body.push(renderStream(s, opts.thumbnails));
  body.push('<section id="config"><h2>Run configuration</h2>');
  body.push(`<pre>${esc(JSON.stringify(opts.config, null, 2))}</pre></section>`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}</style></head>
<body>${body.join('\n')}</body></html>
`;
}

function renderStream(s: StreamView, thumbnails: Map<string, Buffer> | undefined): string {
  const info = s.info;
  const tracks = [...s.tracks.values()];
  const out: string[] = [`<section class="stream" data-stream="${esc(s.streamId)}">`];
  out.push(`<h2>Video <code>${esc(info?.source ?? s.streamId)}</code></h2>`);
  const rows: [string, string][] = [
    ['stream id', s.streamId],
    ['source', info?.source ?? '?'],
    ['size', info ? `${info.width}×${info.height}` : '?'],
    ['frame rate', info?.fps !== undefined ? `${round(info.fps, 3)} fps` : '?'],
    ['duration', info?.duration !== undefined ? `${round(info.duration, 2)} s (${formatTime(info.duration)})` : '?'],
    ['frames analysed', s.end ? String(s.end.frames) : '?'],
    ['face tracks', String(tracks.length)],
    ['ended', s.end ? s.end.reason + (s.end.error ? `: ${s.end.error}` : '') : 'not recorded (run cut short)'],
  ];
  out.push(`<table class="kv" id="metadata">${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>`);

  // one shared x axis per stream, so charts of different tracks line up in time
  const spans = tracks.map(trackSpan).filter((x): x is { start: number; end: number } => x !== undefined);
  const start = info?.clock === 'media' || info?.kind === 'file' ? 0 : Math.min(...spans.map((x) => x.start));
  const end = Math.max(info?.duration ?? 0, ...spans.map((x) => x.end));

  out.push('<h3>Segments</h3>');
  out.push(renderSegments(tracks));
  out.push(`<h3>Tracks</h3><p class="legend">${renderLegend()}</p>`);
  if (tracks.length === 0) out.push('<p class="empty">No faces were found in this video.</p>');
  for (const t of tracks) out.push(renderTrack(t, { start: Number.isFinite(start) ? start : 0, end }, thumbnails));
  out.push('</section>');
  return out.join('\n');
}

function renderSegments(tracks: TrackView[]): string {
  const rows = tracks.flatMap((t) =>
    t.segments.map(
      (seg) =>
        `<tr data-track="${esc(t.trackId)}" data-label="${seg.label}"><td>${esc(t.trackId)}</td><td><span class="swatch" style="background:${EXPRESSION_COLORS[seg.label]}"></span>${seg.label}</td><td>${round(seg.start, 2)}</td><td>${round(seg.end, 2)}</td><td>${round(seg.end - seg.start, 2)}</td><td>${round(seg.meanProbabilities[seg.label], 3)}</td><td>${seg.observations}</td></tr>`,
    ),
  );
  if (rows.length === 0) return '<p class="empty">No segments.</p>';
  return `<table class="grid" id="segments"><thead><tr><th>track</th><th>label</th><th>start (s)</th><th>end (s)</th><th>duration (s)</th><th>mean confidence</th><th>observations</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function renderTrack(t: TrackView, axis: { start: number; end: number }, thumbnails: Map<string, Buffer> | undefined): string {
  const out: string[] = [`<article class="track" id="track-${esc(t.streamId)}-${esc(t.trackId)}" data-track="${esc(t.trackId)}">`];
  out.push(`<h4>Track ${esc(t.trackId)}</h4><div class="track-head">`);
  const jpeg = thumbnails?.get(`${t.streamId}/${t.trackId}`) ?? thumbnails?.get(t.trackId);
  if (jpeg) out.push(`<img class="thumb" alt="face of track ${esc(t.trackId)}" src="data:image/jpeg;base64,${jpeg.toString('base64')}">`);
  out.push(renderSummary(t), '</div>');
  out.push(renderTrackChart(t, axis));
  out.push('</article>');
  return out.join('\n');
}

function renderSummary(t: TrackView): string {
  const s = t.end?.summary;
  if (!s) {
    return `<table class="kv summary"><tr><th>observations</th><td>${t.observations.length}</td></tr><tr><th>summary</th><td>none (the track did not end before the run stopped)</td></tr></table>`;
  }
  const rows: [string, string][] = [
    ['span', `${round(t.end!.start, 2)}–${round(t.end!.end, 2)} s`],
    ['duration', `${round(s.duration, 2)} s`],
    ['observations', String(s.observations)],
    ['dominant', s.dominant],
    ['segments', String(s.segments)],
    ['ended', t.end!.reason],
  ];
  return `<table class="kv summary">${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>${renderBars('mean probability', s.meanProbabilities, (v) => round(v, 3))}${renderBars('time in label', s.labelDurations, (v) => `${round(v, 2)} s`, s.duration)}`;
}

/** Horizontal bars per expression (plain HTML, so they print and copy well). */
function renderBars(title: string, values: ExpressionProbabilities, fmt: (v: number) => string, scale = 1): string {
  const rows = EXPRESSIONS.map((e) => {
    const pct = scale > 0 ? Math.min(100, (values[e] / scale) * 100) : 0;
    return `<tr><th>${e}</th><td class="bar"><span style="width:${pct.toFixed(1)}%;background:${EXPRESSION_COLORS[e]}"></span></td><td>${esc(fmt(values[e]))}</td></tr>`;
  });
  return `<table class="bars"><caption>${esc(title)}</caption>${rows.join('')}</table>`;
}

function round(n: number, digits: number): string {
  return Number.isFinite(n) ? String(Number(n.toFixed(digits))) : '?';
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d232a;margin:24px auto;max-width:1000px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dde2e6;padding-bottom:4px}
h3{font-size:15px;margin:20px 0 6px}h4{margin:18px 0 6px;font-size:14px}
.meta{color:#68737d;margin:0}code{font-size:13px}
table{border-collapse:collapse}th{text-align:left;font-weight:600}
.kv th{padding:2px 14px 2px 0;color:#4a545e}.kv td{padding:2px 0}
table.grid{width:100%}table.grid th,table.grid td{border-bottom:1px solid #e6e9ec;padding:4px 8px}
table.grid td:nth-child(n+3){text-align:right;font-variant-numeric:tabular-nums}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:baseline}
.key{margin-right:12px;white-space:nowrap}
.track{border:1px solid #e6e9ec;border-radius:6px;padding:4px 12px 10px;margin:12px 0}
.track-head{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap}
.thumb{width:96px;height:96px;border-radius:4px;object-fit:cover}
.bars caption{text-align:left;color:#4a545e;font-weight:600;padding-bottom:2px}
.bars th{font-weight:400;padding-right:8px}.bars td{padding:1px 4px;font-variant-numeric:tabular-nums}
.bar{width:120px}.bar span{display:block;height:9px;border-radius:2px}
.chart{max-width:100%;height:auto;margin-top:8px}
.chart .grid{stroke:#eceff1;stroke-width:1}.chart text{font-size:10px;fill:#68737d}
.chart .ylab{text-anchor:end}.chart .xlab{text-anchor:middle}
pre{background:#f5f7f8;padding:10px;border-radius:4px;overflow:auto;font-size:12px}
.empty{color:#68737d}
`;
