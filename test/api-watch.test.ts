// watch() on a live RTSP camera (the local GStreamer test server looping d0.mp4): wall-clock events while it
// runs; unsubscribe kills ffmpeg; an AbortSignal ends the stream with stream.end 'stopped', also before the
// camera ever connected.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TimelineEvent, watch } from '../src/index.js';
import { testModelsDir } from './helpers/models.js';
import { RtspTestServer, ffmpegChildren, freePort, waitFor } from './helpers/rtsp.js';
import { assertValidEvents } from './helpers/schema.js';
import { sharedPath } from './helpers/shared.js';

let server: RtspTestServer;
let models: string;

beforeAll(async () => {
  models = await testModelsDir();
  server = new RtspTestServer(await freePort(), { d0: sharedPath('data', 'videos', 'd0.mp4') });
  await server.start();
});
afterAll(async () => {
  await server.kill();
});

describe('watch()', () => {
  it('gives wall-clock events of a live camera; unsubscribing leaves no ffmpeg', async () => {
    const events: TimelineEvent[] = [];
    let ffmpegWhileRunning = 0;
    await new Promise<void>((resolve, reject) => {
      const sub = watch(server.url('d0'), { models, device: 'cpu', sampleFps: 5 }).subscribe({
        next: (e) => {
          events.push(e);
          ffmpegWhileRunning = Math.max(ffmpegWhileRunning, ffmpegChildren().length);
          if (events.filter((x) => x.type === 'face.observation').length === 3) {
            sub.unsubscribe();
            resolve();
          }
        },
        error: reject,
      });
    });
    assertValidEvents(events);
    expect(events[0]).toMatchObject({ type: 'stream.start', stream: { kind: 'rtsp', clock: 'wall' } });
    expect(events.find((e) => e.type === 'face.observation')!.time).toBeGreaterThan(1.7e9);
    expect(ffmpegWhileRunning).toBe(1);
    await waitFor('ffmpeg to end', () => ffmpegChildren().length === 0, 10_000);
  });

  it('an AbortSignal ends the stream gracefully: tracks closed, stream.end stopped, complete', async () => {
    const ac = new AbortController();
    const events: TimelineEvent[] = [];
    for await (const e of watch(server.url('d0'), { models, device: 'cpu', sampleFps: 5, signal: ac.signal })) {
      events.push(e);
      if (e.type === 'face.observation') ac.abort();
    }
    expect(events.at(-1)).toMatchObject({ type: 'stream.end', reason: 'stopped' });
    expect(events.some((e) => e.type === 'track.end')).toBe(true);
    await waitFor('ffmpeg to end', () => ffmpegChildren().length === 0, 10_000);
  });

  it('stopped before the camera ever answered: stream.offline, then stream.end stopped, no error', async () => {
    const ac = new AbortController();
    const events: TimelineEvent[] = [];
    for await (const e of watch(`rtsp://127.0.0.1:${await freePort()}/nothing`, { models, device: 'cpu', signal: ac.signal })) {
      events.push(e);
      if (e.type === 'stream.offline') ac.abort();
    }
    expect(events.map((e) => e.type)).toEqual(['stream.offline', 'stream.end']);
    expect(events.at(-1)).toMatchObject({ reason: 'stopped' });
  });
});
