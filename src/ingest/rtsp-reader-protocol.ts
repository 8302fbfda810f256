// Messages between a live source (main thread) and its reader worker (rtsp-reader.worker.ts), and the one
// stderr parser both use.

export type ToReader =
  | { type: 'start'; ffmpegPath: string; args: string[] }
  /** the main thread can take `n` more frames. */
  | { type: 'credit'; n: number }
  /** SIGTERM, then SIGKILL after graceMs; an `exit` message follows. */
  | { type: 'stop'; graceMs: number };

export type FromReader =
  | { type: 'pid'; pid: number }
  | { type: 'stderr'; line: string }
  | { type: 'size'; width: number; height: number; fps?: number }
  /** one RGB24 frame (transferred); `at` = wall-clock Unix seconds it was complete; `dropped` = newer-frame-wins drops since the last one. */
  | { type: 'frame'; data: ArrayBuffer; at: number; dropped: number }
  | { type: 'exit'; code: number | null; signal: string | null; partialBytes: number };

export interface StderrFacts {
  /** this line starts ffmpeg's output section. */
  output?: boolean;
  inputFps?: number;
  /** the rawvideo output size (after our scale filter): only from the output section. */
  size?: { width: number; height: number };
}

/**
 * Frame size from ffmpeg's own log: "Output #0, rawvideo …" then "Stream #0:0: Video: rawvideo (RGB[24] /
 * 0x18424752), rgb24(…), 512x512, …". The size follows ", " — the codec tag "0x18424752" does not.
 */
export function parseStderrLine(line: string, inOutput: boolean): StderrFacts {
  if (/^Output #0/.test(line)) return { output: true };
  if (!/Stream #0:\d+.*Video:/.test(line)) return {};
  if (!inOutput) {
    const fps = /,\s([\d.]+) fps/.exec(line);
    return fps?.[1] === undefined ? {} : { inputFps: Number(fps[1]) };
  }
  const size = /,\s(\d{1,5})x(\d{1,5})\b/.exec(line);
  if (size?.[1] === undefined || size[2] === undefined) return {};
  return { size: { width: Number(size[1]), height: Number(size[2]) } };
}
