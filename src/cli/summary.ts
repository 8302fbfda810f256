// The end-of-run table on stderr: one row per track (duration, dominant expression, segments).
import type { RunSummary } from '../pipeline/run.js';

export function formatSummary(summary: RunSummary): string {
  const fps = summary.wallSeconds > 0 ? summary.frames / summary.wallSeconds : 0;
  const lines = [
    `${summary.frames} frames in ${summary.wallSeconds.toFixed(1)} s (${fps.toFixed(1)} fps), ` +
      `${summary.crops - summary.reused} faces read in ${summary.batches} batches` +
      (summary.reused > 0 ? ` (${summary.reused} unchanged faces not re-read)` : '') +
      `, ${summary.tracks.length} tracks, ${summary.events} events`,
  ];
  if (summary.tracks.length === 0) return `${lines[0]}\nno faces found\n`;
  const header = ['stream', 'track', 'start s', 'end s', 'duration s', 'dominant', 'segments', 'observations'];
  const rows = summary.tracks.map((t) => [
    t.streamId,
    t.trackId,
    t.start.toFixed(2),
    t.end.toFixed(2),
    t.summary.duration.toFixed(2),
    t.summary.dominant,
    String(t.summary.segments),
    String(t.summary.observations),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]): string => r.map((c, i) => (i >= 2 && i !== 5 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  lines.push(fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt));
  return `${lines.join('\n')}\n`;
}
