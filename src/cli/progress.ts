// Progress on stderr while a file is analysed: a cli-progress bar (frames, fps, ETA, faces) when stderr is a
// terminal, nothing otherwise (logs and pipes get the summary at the end instead of a stream of bar redraws).
import cliProgress from 'cli-progress';
import type { ProgressUpdate } from '../pipeline/run.js';

export interface ProgressReporter {
  update(p: ProgressUpdate): void;
  stop(): void;
}

export interface ProgressOptions {
  /** frames expected, when the duration is known. */
  total?: number;
  enabled: boolean;
  stream?: NodeJS.WriteStream;
}

export function createProgress(options: ProgressOptions): ProgressReporter {
  const stream = options.stream ?? process.stderr;
  if (!options.enabled || !stream.isTTY) return { update: () => undefined, stop: () => undefined };
  const total = options.total !== undefined && options.total > 0 ? Math.round(options.total) : undefined;
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format:
        total === undefined
          ? 'analyze {value} frames | {fps} fps | faces {faces} | tracks {tracks}'
          : 'analyze |{bar}| {value}/{total} frames | {fps} fps | ETA {eta_formatted} | faces {faces} | tracks {tracks}',
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 50,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = performance.now();
  bar.start(total ?? 0, 0, { fps: '0.0', faces: 0, tracks: 0 });
  let frames = 0;
  return {
    update(p) {
      frames = p.totalFrames;
      const seconds = (performance.now() - started) / 1000;
      // The frame count can pass a probed total (durations are rounded); grow the bar rather than overflow it.
      if (total !== undefined && frames > bar.getTotal()) bar.setTotal(frames);
      bar.update(frames, { fps: seconds > 0 ? (frames / seconds).toFixed(1) : '0.0', faces: p.faces, tracks: p.tracks });
    },
    stop() {
      bar.stop();
    },
  };
}
