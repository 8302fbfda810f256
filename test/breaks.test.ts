// Track breaks (camera offline, camera reassigned) in a stream's flow: the pure ordering logic of
// src/pipeline/breaks.ts with the real tracker, and a stage that finishes frames late and out of step.
import { EMPTY, concatMap, delay, firstValueFrom, from, map, of, toArray, type OperatorFunction } from 'rxjs';
import { createPipeline } from '../src/pipeline/run.js';
import { describe, expect, it } from 'vitest';
import { isBreak, passBreaks, trackAcrossBreaks } from '../src/pipeline/breaks.js';
import type { TrackBreak } from '../src/pipeline/messages.js';
import { track } from '../src/pipeline/track.js';
import type { Frame, FrameSource, Sink, TimelineEvent, TrackedFrame } from '../src/types.js';

const frame = (frameId: number): Frame => ({ streamId: 'cam', frameId, pts: frameId / 5, width: 640, height: 480, data: Buffer.alloc(0) });
const brk: TrackBreak = { kind: 'break', streamId: 'cam', reason: 'stream-offline' };

/** One face in the same place on every frame; every stage call takes a different time. */
const slowDetectAndTrack = (): OperatorFunction<Frame, TrackedFrame> => (frames) =>
  frames.pipe(
    concatMap((f) => of(f).pipe(delay((f.frameId * 7) % 5))),
    map((f) => ({ frame: f, detections: [{ box: { x: 100, y: 100, width: 80, height: 80 }, score: 0.9 }] })),
    track({ minHits: 1 }),
  );

describe('track breaks', () => {
  it('end every track at the break, keep the order, and never reuse a track id afterwards', async () => {
    const input: (Frame | TrackBreak)[] = [frame(0), frame(1), frame(2), brk, frame(3), frame(4), brk, brk, frame(5), frame(6)];
    const out = await firstValueFrom(from(input).pipe(trackAcrossBreaks(slowDetectAndTrack), toArray()));
    const shape = out.map((x) => (isBreak(x) ? 'break' : `${x.frame.frameId}:${x.faces.map((f) => f.trackId).join(',')}`));
    // the same face gets a new id after each break: its old track ended there
    expect(shape).toEqual(['0:t1', '1:t1', '2:t1', 'break', '3:t2', '4:t2', 'break', 'break', '5:t3', '6:t3']);
  });

  it('without a break the face keeps one id (the break is what ends it)', async () => {
    const out = await firstValueFrom(from([0, 1, 2, 3, 4, 5].map(frame)).pipe(trackAcrossBreaks(slowDetectAndTrack), toArray()));
    expect(new Set(out.flatMap((x) => (isBreak(x) ? [] : x.faces.map((f) => f.trackId))))).toEqual(new Set(['t1']));
  });

  it('passBreaks holds a break behind the frames that entered a slow stage before it', async () => {
    const slow: OperatorFunction<number, string> = (xs) => xs.pipe(concatMap((x) => of(`f${x}`).pipe(delay(x === 1 ? 20 : 1))));
    const input: (number | TrackBreak)[] = [brk, 1, 2, brk, 3];
    const out = await firstValueFrom(from(input).pipe(passBreaks(slow), toArray()));
    expect(out.map((x) => (isBreak(x) ? 'break' : x))).toEqual(['break', 'f1', 'f2', 'break', 'f3']);
  });

  it('a stream whose frames end at once (a camera closed while connecting) still ends, with or without a break', async () => {
    const written: TimelineEvent[] = [];
    const sink: Sink = { name: 'mem', write: async (e) => void written.push(e), flush: async () => undefined, close: async () => undefined, stats: () => ({ sent: 0, buffered: 0, dropped: 0 }) };
    const pipeline = createPipeline({ detector: { detect: async () => [] } as never, model: { cropSize: 8, infer: async () => [] } as never, sinks: [sink] });
    const source = (streamId: string): FrameSource => ({
      streamId,
      info: async () => ({ streamId, source: 'rtsp://x', kind: 'rtsp', clock: 'wall', width: 8, height: 8 }),
      frames: () => EMPTY, // completes while it is being subscribed
      release: () => undefined,
      skipped: () => 0,
    });
    const plain = pipeline.add(source('a'));
    const broken = pipeline.add(source('b'));
    pipeline.interrupt('b', 'reassigned');
    const ended = await Promise.race([Promise.all([plain, broken]), new Promise((r) => setTimeout(() => r('hung'), 2000))]);
    expect(ended).not.toBe('hung');
    expect(written.filter((e) => e.type === 'stream.end').map((e) => e.streamId).sort()).toEqual(['a', 'b']);
    await pipeline.close();
  });

  it('a stream stopped while its source is still connecting ends "stopped", not "eof"', async () => {
    const written: TimelineEvent[] = [];
    const sink: Sink = { name: 'mem', write: async (e) => void written.push(e), flush: async () => undefined, close: async () => undefined, stats: () => ({ sent: 0, buffered: 0, dropped: 0 }) };
    const pipeline = createPipeline({ detector: { detect: async () => [] } as never, model: { cropSize: 8, infer: async () => [] } as never, sinks: [sink] });
    let connected: () => void = () => undefined;
    const source: FrameSource = {
      streamId: 'slow',
      // connects after the stop was asked (the camera answered just as it was handed back)
      info: () => new Promise((r) => (connected = () => r({ streamId: 'slow', source: 'rtsp://x', kind: 'rtsp', clock: 'wall', width: 8, height: 8 }))),
      frames: () => EMPTY, // closed meanwhile: no frame
      release: () => undefined,
      skipped: () => 0,
    };
    const done = pipeline.add(source);
    await new Promise((r) => setTimeout(r, 10));
    pipeline.stop('slow');
    connected();
    expect((await done).reason).toBe('stopped');
    expect(written.find((e) => e.type === 'stream.end')).toMatchObject({ reason: 'stopped' });
    await pipeline.close();
  });
});
