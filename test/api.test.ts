// The public API (src/index.ts) as a program uses it: analyze() consumed with `for await` and with
// `.subscribe`, teardown on unsubscribe (no ffmpeg child, no extra thread left: counted in /proc), graceful stop
// with an AbortSignal, one createAnalyzer for 20 inputs (one model load), inputs told apart by content.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { lastValueFrom, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TimelineEvent, analyze, createAnalyzer, isCafeStreamError } from '../src/index.js';
import { testModelsDir } from './helpers/models.js';
import { ffmpegChildren, waitFor } from './helpers/rtsp.js';
import { assertValidEvents } from './helpers/schema.js';
import { sharedPath } from './helpers/shared.js';
import { tempDir } from './helpers/videos.js';

const tmp = tempDir();
let models: string;
const d0 = (): string => sharedPath('data', 'videos', 'd0.mp4');
const threads = (): number => readdirSync('/proc/self/task').length;

beforeAll(async () => {
  models = await testModelsDir();
});
afterAll(() => tmp.cleanup());

describe('analyze()', () => {
  it('for await and .subscribe give the same valid timeline of d0.mp4', async () => {
    const viaAwait: TimelineEvent[] = [];
    for await (const e of analyze(d0(), { models, device: 'cpu', sampleFps: 5 })) viaAwait.push(e);
    const viaSubscribe = await lastValueFrom(analyze(d0(), { models, device: 'cpu', sampleFps: 5 }).pipe(toArray()));
    assertValidEvents(viaAwait);
    assertValidEvents(viaSubscribe);
    for (const events of [viaAwait, viaSubscribe]) {
      expect(events[0]).toMatchObject({ type: 'stream.start', streamId: 'd0.mp4' });
      expect(events.at(-1)).toMatchObject({ type: 'stream.end', reason: 'eof' });
      expect(events.filter((e) => e.type === 'face.observation').length).toBeGreaterThan(5);
    }
    expect(viaSubscribe.map((e) => e.type)).toEqual(viaAwait.map((e) => e.type));
  });

  it('unsubscribing mid-file leaves no ffmpeg child and no extra thread behind', async () => {
    // a first run to its end starts what stays for the life of any Node process (libuv's pool, ORT's env)
    await lastValueFrom(analyze(sharedPath('data', 'images', 'surprised.jpg'), { models, device: 'cpu' }).pipe(toArray()));
    const baseline = threads();
    let peakFfmpeg = 0;
    let peakThreads = 0;
    await new Promise<void>((resolve, reject) => {
      let observations = 0;
      const sub = analyze(d0(), { models, device: 'cpu' }).subscribe({
        next: (e) => {
          peakFfmpeg = Math.max(peakFfmpeg, ffmpegChildren().length);
          peakThreads = Math.max(peakThreads, threads());
          if (e.type === 'face.observation' && ++observations === 3) {
            sub.unsubscribe();
            resolve();
          }
        },
        error: reject,
        complete: () => reject(new Error('completed before it was unsubscribed')),
      });
    });
    // the run really had an ffmpeg and a detector thread to clean up
    expect(peakFfmpeg).toBe(1);
    expect(peakThreads).toBeGreaterThan(baseline);
    const left = await waitFor('ffmpeg and threads to end', () => ffmpegChildren().length === 0 && threads() <= baseline && { threads: threads() }, 20_000).catch(() => ({ threads: threads() }));
    expect(ffmpegChildren()).toEqual([]);
    expect(left.threads, `threads: ${baseline} before, ${peakThreads} while running, ${left.threads} after`).toBeLessThanOrEqual(baseline);
    if (process.env["CAFE_API_TEST_VERBOSE"]) console.info(`ffmpeg children peak ${peakFfmpeg}, now ${ffmpegChildren().length}; threads ${baseline} before, ${peakThreads} running, ${left.threads} after`);
  });

  it('an AbortSignal stops gracefully: stream.end reason stopped, then complete', async () => {
    const ac = new AbortController();
    const events: TimelineEvent[] = [];
    for await (const e of analyze(d0(), { models, device: 'cpu', signal: ac.signal })) {
      events.push(e);
      if (e.type === 'face.observation') ac.abort();
    }
    expect(events.at(-1)).toMatchObject({ type: 'stream.end', reason: 'stopped' });
    expect(events.filter((e) => e.type === 'track.end').every((e) => e.type === 'track.end' && e.reason === 'stream.end')).toBe(true);
    // ffmpeg gets SIGTERM when the stream stops and SIGKILL 0.5 s later: it is gone within moments, not left behind
    await waitFor('ffmpeg to end', () => ffmpegChildren().length === 0, 5_000).catch(() => undefined);
    expect(ffmpegChildren()).toEqual([]);
  });

  it('a missing file: stream.end with the cause, then the error with its code', async () => {
    const events: TimelineEvent[] = [];
    const err = await (async () => {
      for await (const e of analyze(join(tmp.dir, 'nope.mp4'), { models, device: 'cpu' })) events.push(e);
    })().catch((e: unknown) => e);
    expect(isCafeStreamError(err) && err.code).toBe('CS_ERR_INPUT_MISSING');
    expect(events).toMatchObject([{ type: 'stream.end', reason: 'error' }]);
  });

  it('a bad option fails at the call, not on subscribe', () => {
    expect(() => analyze(d0(), { device: 'tpu' as 'cpu' })).toThrow(/device must be one of/);
    expect(() => createAnalyzer({ modles: 'x' } as never)).toThrow(/unknown analyzer option "modles"/);
    expect(() => createAnalyzer({ detectorRuntime: 'tflite' as 'onnx' })).toThrow(/detectorRuntime must be one of onnx, tfjs/);
    expect(() => analyze(d0(), { detectorRuntime: 'tflite' as 'onnx' })).toThrow(/detectorRuntime/);
    expect(() => createAnalyzer({ modelThreads: -1 })).toThrow(/modelThreads must be an integer from 0 to 64/);
    expect(() => analyze(d0(), { modelThreads: 2.5 })).toThrow(/modelThreads/);
  });
});

describe('createAnalyzer()', () => {
  it('runs 20 inputs one after another with one model load', async () => {
    const analyzer = createAnalyzer({ models, device: 'cpu' });
    const images = ['surprised.jpg', 'faces.jpg', 'angry.jpg', 'face1.png', 'face2.png'].map((f) => sharedPath('data', 'images', f));
    const inputs = Array.from({ length: 20 }, (_, k) => (k % 5 === 4 ? d0() : images[k % 5]!));
    const ends: TimelineEvent[] = [];
    try {
      for (const input of inputs) {
        const events = await lastValueFrom(analyzer.analyze(input, { sampleFps: 2 }).pipe(toArray()));
        ends.push(events.at(-1)!);
      }
      expect(ends.every((e) => e.type === 'stream.end' && e.reason === 'eof')).toBe(true);
      const stats = analyzer.stats();
      expect(stats.streams).toBe(20);
      expect(stats.loads).toBe(1);
      expect(stats.activeStreams).toEqual([]);
    } finally {
      await analyzer.close();
    }
    expect(() => analyzer.analyze(d0()).subscribe({ error: () => undefined })).not.toThrow();
  });

  it('several inputs at once share batches; a bad one ends with an error, the others complete', async () => {
    const analyzer = createAnalyzer({ models, device: 'cpu' });
    try {
      const events: TimelineEvent[] = [];
      const err = await (async () => {
        for await (const e of analyzer.analyze([sharedPath('data', 'images', 'faces.jpg'), join(tmp.dir, 'missing.jpg'), d0()], { concurrency: 2, sampleFps: 4 })) events.push(e);
      })().catch((e: unknown) => e);
      expect(isCafeStreamError(err) && err.code).toBe('CS_ERR_INPUT_MISSING');
      const ends = Object.fromEntries(events.filter((e) => e.type === 'stream.end').map((e) => [e.streamId, e.type === 'stream.end' && e.reason]));
      expect(ends).toEqual({ 'faces.jpg': 'eof', 'missing.jpg': 'error', 'd0.mp4': 'eof' });
      expect(analyzer.stats().loads).toBe(1);
    } finally {
      await analyzer.close();
    }
  });
});

describe('loading beside the probe and the first frames', () => {
  it("the file's own error comes first even when the models fail too; a good file after a bad models folder names the models", async () => {
    const notVideo = join(tmp.dir, 'notes.mp4');
    writeFileSync(notVideo, 'not a video at all\n');
    const noModels = join(tmp.dir, 'no-models');
    mkdirSync(noModels, { recursive: true });
    const bad = await (async () => {
      for await (const _ of analyze(notVideo, { models: noModels, device: 'cpu' })) void _;
    })().catch((e: unknown) => e);
    expect(isCafeStreamError(bad) && bad.code).toBe('CS_ERR_NOT_A_VIDEO');
    const good = await (async () => {
      for await (const _ of analyze(d0(), { models: noModels, device: 'cpu' })) void _;
    })().catch((e: unknown) => e);
    expect(isCafeStreamError(good) && good.code).toMatch(/^CS_ERR_MODEL/);
    // nothing the early decoding started outlives the failed run
    await waitFor('no ffmpeg child', () => ffmpegChildren().length === 0, 5000);
  });
});

describe('inputs are told apart by content, not by name', () => {
  it('a .bmp photo, an extension-less JPEG and a video named .jpg', async () => {
    const bmp = join(tmp.dir, 'surprised.bmp');
    await promisify(execFile)('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-i', sharedPath('data', 'images', 'surprised.jpg'), bmp]);
    const bare = join(tmp.dir, 'surprised');
    copyFileSync(sharedPath('data', 'images', 'surprised.jpg'), bare);
    const videoNamedJpg = join(tmp.dir, 'clip.jpg');
    copyFileSync(d0(), videoNamedJpg);
    const analyzer = createAnalyzer({ models, device: 'cpu' });
    try {
      for (const photo of [bmp, bare]) {
        const events = await lastValueFrom(analyzer.analyze(photo).pipe(toArray()));
        expect(events[0]).toMatchObject({ type: 'stream.start', stream: { duration: 0, width: 500, height: 333 } });
        expect(events.filter((e) => e.type === 'face.observation')).toHaveLength(1);
      }
      const video = await lastValueFrom(analyzer.analyze(videoNamedJpg, { sampleFps: 2 }).pipe(toArray()));
      expect(video[0]).toMatchObject({ type: 'stream.start', stream: { duration: expect.any(Number) } });
      expect((video[0] as { stream: { duration: number } }).stream.duration).toBeGreaterThan(3);
    } finally {
      await analyzer.close();
    }
  });
});
