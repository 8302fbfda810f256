// The human-readable live timeline that `watch` prints on stdout: one line per thing a person cares about
// (online/offline, a face appears or leaves, a face's expression changes), never one line per frame.
import type { Expression, TimelineEvent } from '../types.js';

function clock(unixSeconds: number): string {
  const d = new Date(unixSeconds * 1000);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

export class LiveTimelinePrinter {
  readonly #labels = new Map<string, Expression>();
  readonly #write: (line: string) => void;

  constructor(write: (line: string) => void = (l) => process.stdout.write(`${l}\n`)) {
    this.#write = write;
  }

  /** The line for `event`, or undefined when it changes nothing a person would see. */
  format(event: TimelineEvent): string | undefined {
    const head = `${clock(event.time)}  ${event.streamId}`;
    switch (event.type) {
      case 'stream.start':
        return `${head}  stream ${event.stream.width}×${event.stream.height}${event.stream.fps ? ` @ ${event.stream.fps} fps` : ''}`;
      case 'stream.online':
        return `${head}  ONLINE${event.attempt > 0 ? ` (after ${event.attempt} attempt${event.attempt === 1 ? '' : 's'})` : ''}`;
      case 'stream.offline':
        return `${head}  OFFLINE: ${event.reason} (retry in ${event.retryIn.toFixed(1)} s)`;
      case 'track.start':
        return `${head}  ${event.trackId} appears`;
      case 'face.observation': {
        const key = `${event.streamId}/${event.trackId}`;
        if (this.#labels.get(key) === event.label) return undefined;
        this.#labels.set(key, event.label);
        return `${head}  ${event.trackId} ${event.label} (${Math.round(event.confidence * 100)}%)`;
      }
      case 'track.end':
        this.#labels.delete(`${event.streamId}/${event.trackId}`);
        return `${head}  ${event.trackId} leaves after ${(event.end - event.start).toFixed(1)} s, mostly ${event.summary.dominant}`;
      case 'stream.end':
        return `${head}  stream ended (${event.reason}${event.error ? `: ${event.error}` : ''}), ${event.frames} frames, ${event.tracks} tracks`;
      case 'face.segment':
        return undefined; // the label change was printed when it happened
    }
  }

  print(event: TimelineEvent): void {
    const line = this.format(event);
    if (line !== undefined) this.#write(line);
  }
}
