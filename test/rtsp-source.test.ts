// The RTSP source against a real GStreamer RTSP server and real ffmpeg: connect, wall-clock pts, server killed and
// restarted, server hung (watchdog), no server, latest-frame-wins, and no ffmpeg left behind.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activeFfmpegPids, createRtspSource, type RtspSource, type SourceStatus } from '../src/ingest/rtsp-source.js';
import { StallWatchdog } from '../src/ingest/watchdog.js';
import type { Frame } from '../src/types.js';
import { ffmpegChildren, freePort, RtspTestServer, waitFor } from './helpers/rtsp.js';
import { sharedPath } from './helpers/shared.js';

/** A subscribed source that records frames and status changes; releases frames at once unless told not to. */
function watch(source: RtspSource, opts: { hold?: boolean } = {}) {
  const frames: Frame[] = [];
  const events: SourceStatus[] = [];
  const held: Frame[] = [];
  source.events$.subscribe((e) => events.push(e));
  const sub = source.frames().subscribe((f) => {
    frames.push({ ...f, data: Buffer.alloc(0) });
    if (opts.hold) held.push(f);
    else source.release(f);
  });
  return { frames, events, held, sub };
}

describe('rtsp source', () => {
  let server: RtspTestServer;

  beforeAll(async () => {
    server = new RtspTestServer(await freePort(), { d0: sharedPath('data', 'videos', 'd0.mp4') });
    await server.start();
  }, 90_000);

  afterAll(async () => {
    await server.kill();
  });

  it('connects, delivers 512×512 frames with wall-clock pts, and leaves no ffmpeg after close', async () => {
    const source = createRtspSource({ url: server.url('d0'), streamId: 'cam0' });
    // the pipeline asks for info() before it subscribes: that alone must connect
    const info = await source.info();
    const w = watch(source);
    await waitFor('20 frames', () => w.frames.length >= 20, 20_000);
    expect(info).toMatchObject({ streamId: 'cam0', kind: 'rtsp', clock: 'wall', width: 512, height: 512 });
    const now = Date.now() / 1000;
    for (const f of w.frames) {
      expect(f.width).toBe(512);
      expect(Math.abs(now - f.pts)).toBeLessThan(30);
    }
    const pts = w.frames.map((f) => f.pts);
    expect([...pts].sort((a, b) => a - b)).toEqual(pts);
    expect(w.frames.map((f) => f.frameId)).toEqual(w.frames.map((_, i) => i));
    expect(w.events[0]).toMatchObject({ state: 'online', attempt: 0 });
    expect(ffmpegChildren()).toHaveLength(1);
    await source.close();
    expect(activeFfmpegPids()).toEqual([]);
    expect(ffmpegChildren()).toEqual([]);
  }, 40_000);

  it('goes offline with a reason when the server is killed and back online within 10 s of its return', async () => {
    const source = createRtspSource({ url: server.url('d0'), streamId: 'cam1', backoff: { maxDelayMs: 2000 } });
    const w = watch(source);
    await waitFor('online', () => source.state() === 'online', 20_000);
    const firstPid = source.stats().pid;

    await server.kill();
    const offline = await waitFor('offline', () => w.events.find((e) => e.state === 'offline'), 10_000);
    expect(offline.reason).toMatch(/disconnected|refused|stalled/);
    // while the server is down, attempts fail and the source stays offline without leaking processes
    await new Promise((r) => setTimeout(r, 3000));
    expect(source.state()).toBe('offline');
    expect(ffmpegChildren().length).toBeLessThanOrEqual(1);

    await server.start();
    const back = Date.now();
    const online = await waitFor('online again', () => w.events.filter((e) => e.state === 'online')[1], 10_000);
    expect(online.attempt).toBeGreaterThanOrEqual(1);
    const framesAtReturn = w.frames.length;
    await waitFor('frames after reconnect', () => w.frames.length > framesAtReturn + 10, 10_000);
    expect(Date.now() - back).toBeLessThan(20_000);
    expect(source.stats().reconnects).toBe(1);
    expect(source.stats().pid).not.toBe(firstPid);
    await source.close();
    expect(ffmpegChildren()).toEqual([]);
  }, 60_000);

  it('detects a hung server with the stall watchdog and reconnects once it sends again', async () => {
    const source = createRtspSource({ url: server.url('d0'), streamId: 'cam2', stallSeconds: 2, backoff: { maxDelayMs: 1000 } });
    const w = watch(source);
    await waitFor('online', () => source.state() === 'online', 20_000);
    server.hang();
    const offline = await waitFor('offline', () => w.events.find((e) => e.state === 'offline'), 10_000);
    expect(offline.code).toBe('CS_ERR_STREAM_STALLED');
    expect(offline.reason).toMatch(/stalled/);
    server.resume();
    await waitFor('online again', () => w.events.filter((e) => e.state === 'online')[1], 15_000);
    await source.close();
    expect(ffmpegChildren()).toEqual([]);
  }, 60_000);

  it('keeps the newest frame when the pipeline does not release, and counts the skipped ones', async () => {
    const source = createRtspSource({ url: server.url('d0'), streamId: 'cam3', maxPending: 2 });
    const w = watch(source, { hold: true });
    await waitFor('decoding', () => source.stats().decoded >= 30, 20_000);
    expect(w.frames).toHaveLength(2);
    const { decoded, skipped } = source.stats();
    // two out, one held, the rest skipped
    expect(skipped).toBeGreaterThanOrEqual(decoded - 3 - 1);
    expect(source.skipped()).toBe(skipped);
    source.release(w.held[0]!);
    await waitFor('a third frame', () => w.frames.length === 3, 2000);
    // the third frame is the newest one, not the one after the first
    expect(w.frames[2]!.pts).toBeGreaterThan(w.frames[1]!.pts + 0.5);
    expect(w.frames[2]!.frameId).toBe(2);
    await source.close();
  }, 40_000);

  it('reports a refused connection as offline and stops cleanly while retrying', async () => {
    const port = await freePort();
    const source = createRtspSource({ url: `rtsp://127.0.0.1:${port}/none`, streamId: 'nobody' });
    const w = watch(source);
    const info = source.info();
    const offline = await waitFor('offline', () => w.events.find((e) => e.state === 'offline'), 15_000);
    expect(offline.reason).toMatch(/refused/i);
    expect(offline.retryIn).toBeGreaterThan(0);
    await waitFor('a second attempt', () => source.stats().attempts >= 2, 10_000);
    await source.close();
    await expect(info).rejects.toThrow(/closed before it ever connected/);
    expect(source.state()).toBe('stopped');
    expect(ffmpegChildren()).toEqual([]);
  }, 30_000);

  it('rejects bad options at construction', () => {
    expect(() => createRtspSource({ url: 'http://x', streamId: 'a' })).toThrow(/rtsp:\/\//);
    expect(() => createRtspSource({ url: 'rtsp://x', streamId: 'a', sampleFps: 0 })).toThrow(/sampleFps/);
    expect(() => createRtspSource({ url: 'rtsp://x', streamId: 'a', transport: 'sctp' as 'tcp' })).toThrow(/transport/);
  });
});

describe('stall watchdog', () => {
  it('fires once after the timeout without kicks, never while kicked', async () => {
    let now = 0;
    const stalls: number[] = [];
    const wd = new StallWatchdog({ timeoutMs: 40, onStall: (idle) => stalls.push(idle), now: () => now });
    wd.start();
    for (let i = 0; i < 5; i++) {
      now += 30;
      wd.kick();
      await new Promise((r) => setTimeout(r, 15));
    }
    expect(stalls).toEqual([]);
    now += 100;
    await new Promise((r) => setTimeout(r, 30));
    expect(stalls).toHaveLength(1);
    expect(stalls[0]).toBeGreaterThanOrEqual(40);
    wd.stop();
  });
});
