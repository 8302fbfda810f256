// A camera → a callback when someone holds an expression (default: anger) for 3 seconds.
//
//   npx tsx examples/held-expression.ts rtsp://127.0.0.1:8554/lobby [anger] [3]
//   npx tsx examples/held-expression.ts recording.mp4 [anger] [3]      (a recording stands in for the camera)
//
// `heldFor` is a plain RxJS operator over the typed events: per track, the time its smoothed label became the
// expression; one alert once it has lasted long enough (a flicker of another label under 0.25 s does not break
// it), and again only after the label changed for longer and came back.
// Ctrl-C stops the camera gracefully through an AbortSignal.
import { type Observable, filter, map } from 'rxjs';
import { type Expression, type FaceObservationEvent, type TimelineEvent, analyze, watch } from 'cafe-stream';

interface HeldAlert {
  streamId: string;
  trackId: string;
  expression: Expression;
  /** when the expression began (stream time, seconds). */
  since: number;
  /** when it had lasted `seconds`. */
  at: number;
}

function heldFor(expression: Expression, seconds: number, graceSeconds = 0.25) {
  return (events$: Observable<TimelineEvent>): Observable<HeldAlert> => {
    const runs = new Map<string, { start: number; otherSince?: number; alerted: boolean }>();
    return events$.pipe(
      filter((e): e is FaceObservationEvent => e.type === 'face.observation'),
      map((e) => {
        const key = `${e.streamId}/${e.trackId}`;
        const run = runs.get(key);
        if (e.label !== expression) {
          // a flicker of another label shorter than the grace (the timeline merges runs under 0.2 s too) does not
          // end the hold; anything longer does
          if (run !== undefined) {
            run.otherSince ??= e.time;
            if (e.time - run.otherSince >= graceSeconds) runs.delete(key);
          }
          return undefined;
        }
        const current = run ?? { start: e.time, alerted: false };
        delete current.otherSince;
        runs.set(key, current);
        if (current.alerted || e.time - current.start < seconds) return undefined;
        current.alerted = true;
        return { streamId: e.streamId, trackId: e.trackId, expression, since: current.start, at: e.time };
      }),
      filter((a): a is HeldAlert => a !== undefined),
    );
  };
}

const [input, expression = 'anger', seconds = '3'] = process.argv.slice(2);
if (input === undefined) {
  console.error('usage: held-expression.ts <rtsp-url | file> [expression] [seconds]');
  process.exit(2);
}
const stop = new AbortController();
process.once('SIGINT', () => stop.abort());
const events$ = /^rtsps?:\/\//.test(input) ? watch(input, { device: 'cpu', signal: stop.signal }) : analyze(input, { device: 'cpu', signal: stop.signal });

// the callback: here it prints one JSON line per alert
const onAlert = (a: HeldAlert): void => console.log(JSON.stringify(a));

events$.pipe(heldFor(expression as Expression, Number(seconds))).subscribe({
  next: onAlert,
  error: (err: unknown) => {
    console.error(`stopped: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
});
