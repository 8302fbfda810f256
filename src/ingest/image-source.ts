// A photo as a stream of one frame, so a still image goes through exactly the pipeline a video does (detector,
// tracker, crop, model, timeline). Its stream is a `file` stream with duration 0 and its one frame at time 0,
// which the event schema v1 already describes. Which inputs are photos is decided by content (sniff.ts).
import { basename } from 'node:path';
import { Observable } from 'rxjs';
import type { Frame, FrameSource, StreamInfo } from '../types.js';
import { createFileSource, type FileSourceOptions } from './file-source.js';
import { loadImageFrame } from './image.js';
import { mediaKind } from './sniff.js';

export interface ImageSourceOptions {
  path: string;
  /** defaults to the file's base name. */
  streamId?: string;
}

export function createImageSource(opts: ImageSourceOptions): FrameSource {
  const streamId = opts.streamId ?? basename(opts.path);
  // Decoded once, on info(): a bad file fails there, before any frame, as a bad video fails its probe.
  let loaded: Promise<Frame> | undefined;
  const load = (): Promise<Frame> => (loaded ??= loadImageFrame(opts.path, streamId));
  return {
    streamId,
    info: async (): Promise<StreamInfo> => {
      const f = await load();
      return { streamId, source: opts.path, kind: 'file', clock: 'media', width: f.width, height: f.height, duration: 0 };
    },
    frames: () =>
      new Observable<Frame>((sub) => {
        load().then(
          (f) => {
            sub.next(f);
            sub.complete();
          },
          (err: unknown) => sub.error(err),
        );
      }),
    release: () => undefined,
    skipped: () => 0,
  };
}

/** A photo or a video, told apart by the file's content. */
export async function openMediaSource(opts: FileSourceOptions): Promise<{ source: FrameSource; photo: boolean }> {
  const photo = (await mediaKind(opts.path)) === 'photo';
  const source = photo
    ? createImageSource({ path: opts.path, ...(opts.streamId === undefined ? {} : { streamId: opts.streamId }) })
    : createFileSource(opts);
  return { source, photo };
}
