// A file's decoding started before the pipeline takes the source, so that ffmpeg's start-up and its first frames
// (~0.3 s for a 1280-px H.264 file) overlap the model loading instead of following it. The frames decoded
// meanwhile wait here and go to the first subscriber first. Memory stays bounded by the source's own
// back-pressure: these frames are not released yet, so ffmpeg pauses at the source's `maxPending`.
import { Observable, type Subscriber } from 'rxjs';
import type { Frame, FrameSource } from '../types.js';

export interface PrestartedSource extends FrameSource {
  /** Stops the early decoding when no one will take the frames (the models failed to load, the run was stopped). */
  cancel(): void;
}

export function prestart(source: FrameSource): PrestartedSource {
  const waiting: Frame[] = [];
  let ended: { error: unknown } | 'complete' | undefined;
  let taker: Subscriber<Frame> | undefined;
  let taken = false;
  const early = source.frames().subscribe({
    next: (f) => (taker ? taker.next(f) : void waiting.push(f)),
    error: (err: unknown) => (taker ? taker.error(err) : void (ended = { error: err })),
    complete: () => (taker ? taker.complete() : void (ended = 'complete')),
  });
  const dropWaiting = (): void => {
    for (const f of waiting.splice(0)) source.release(f);
  };

  return {
    streamId: source.streamId,
    info: () => source.info(),
    release: (frame) => source.release(frame),
    skipped: () => source.skipped(),
    cancel(): void {
      if (taken) return;
      taken = true;
      early.unsubscribe();
      dropWaiting();
    },
    frames: () =>
      new Observable<Frame>((subscriber) => {
        // the early run serves one subscriber; any later one starts its own, as the source's frames() would
        if (taken) return source.frames().subscribe(subscriber);
        taken = true;
        while (waiting.length > 0 && !subscriber.closed) subscriber.next(waiting.shift()!);
        if (subscriber.closed) {
          early.unsubscribe();
          dropWaiting();
          return undefined;
        }
        if (ended === 'complete') subscriber.complete();
        else if (ended !== undefined) subscriber.error(ended.error);
        else taker = subscriber;
        return () => {
          taker = undefined;
          early.unsubscribe();
          dropWaiting();
        };
      }),
  };
}
