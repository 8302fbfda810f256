// Track breaks ride in a stream's frame flow, in order. Stages that know nothing of them are wrapped:
// - `passBreaks` (a stateless 1:1 stage such as crop): a break waits until every frame that entered before it
//   has come out;
// - `trackAcrossBreaks` (the detect-and-track stage, which holds tracker state): each break ends the running
//   stage instance once its frames are out and starts a fresh one, so no track survives the break; the fresh
//   tracker's ids are shifted past every id used before, so a stream never reuses a track id.
import { Observable, Subject, type OperatorFunction, type Subscription } from 'rxjs';
import type { Frame, TrackedFrame } from '../types.js';
import type { TrackBreak } from './messages.js';

export function isBreak(x: unknown): x is TrackBreak {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'break';
}

/** Wraps a stage that gives exactly one output per input, in input order. */
export function passBreaks<I, O>(stage: OperatorFunction<I, O>): OperatorFunction<I | TrackBreak, O | TrackBreak> {
  return (source) =>
    new Observable<O | TrackBreak>((out) => {
      // null: a frame inside the stage; a break waits behind the frames that entered before it
      const queue: (TrackBreak | null)[] = [];
      const flush = (): void => {
        while (queue.length > 0 && queue[0] !== null) out.next(queue.shift()!);
      };
      const input = new Subject<I>();
      const stageSub = input.pipe(stage).subscribe({
        next: (o) => {
          queue.shift();
          out.next(o);
          flush();
        },
        error: (err: unknown) => out.error(err),
        complete: () => {
          flush();
          out.complete();
        },
      });
      const sourceSub = source.subscribe({
        next: (x) => {
          if (isBreak(x)) {
            if (queue.length === 0) out.next(x);
            else queue.push(x);
          } else {
            queue.push(null);
            input.next(x);
          }
        },
        error: (err: unknown) => input.error(err),
        complete: () => input.complete(),
      });
      return () => {
        sourceSub.unsubscribe();
        stageSub.unsubscribe();
      };
    });
}

interface Segment {
  input: Subject<Frame>;
  held: TrackedFrame[];
  done: boolean;
  /** the break that closed this segment. */
  after?: TrackBreak;
  sub?: Subscription;
}

/** `makeStage` builds a fresh detect-and-track stage (Frame → TrackedFrame, one out per in, in order). */
export function trackAcrossBreaks(makeStage: () => OperatorFunction<Frame, TrackedFrame>): OperatorFunction<Frame | TrackBreak, TrackedFrame | TrackBreak> {
  return (source) =>
    new Observable<TrackedFrame | TrackBreak>((out) => {
      const segments: Segment[] = [];
      let sourceDone = false;
      let offset = 0; // added to the head segment's track numbers
      let highest = 0; // highest track number emitted so far
      const renumber = (id: string): string => {
        const n = Number(id.slice(1)) + offset;
        highest = Math.max(highest, n);
        return `t${n}`;
      };
      const emit = (f: TrackedFrame): void => {
        if (offset === 0) {
          for (const face of f.faces) highest = Math.max(highest, Number(face.trackId.slice(1)));
          out.next(f);
          return;
        }
        out.next({
          ...f,
          faces: f.faces.map((face) => ({ ...face, trackId: renumber(face.trackId) })),
          ended: f.ended.map((e) => ({ ...e, trackId: renumber(e.trackId) })),
        });
      };
      /** The head segment finished: its break goes out, the next one takes over. */
      const advance = (): void => {
        while (segments.length > 0 && segments[0]!.done) {
          const head = segments.shift()!;
          if (head.after !== undefined) out.next(head.after);
          offset = highest;
          const next = segments[0];
          if (next !== undefined) for (const f of next.held.splice(0)) emit(f);
        }
        if (segments.length === 0 && sourceDone) out.complete();
      };
      const open = (): Segment => {
        const seg: Segment = { input: new Subject<Frame>(), held: [], done: false };
        segments.push(seg);
        seg.sub = seg.input.pipe(makeStage()).subscribe({
          next: (f) => {
            if (segments[0] === seg) emit(f);
            else seg.held.push(f);
          },
          error: (err: unknown) => out.error(err),
          complete: () => {
            seg.done = true;
            if (segments[0] === seg) advance();
          },
        });
        return seg;
      };
      let current = open();
      const sourceSub = source.subscribe({
        next: (x) => {
          if (isBreak(x)) {
            current.after = x;
            const closing = current;
            current = open();
            closing.input.complete();
          } else {
            current.input.next(x);
          }
        },
        error: (err: unknown) => current.input.error(err),
        complete: () => {
          sourceDone = true;
          current.input.complete();
        },
      });
      return () => {
        sourceSub.unsubscribe();
        for (const s of segments) s.sub?.unsubscribe();
      };
    });
}
