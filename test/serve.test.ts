// `cafe-stream serve` end to end, as a separate process: two shared videos as looping RTSP cameras (the local
// GStreamer server), the real detector and ONNX models, a JSONL sink and HTTP on a free port. The RTSP server
// is killed and restarted three times; each time both streams go offline, come back within 10 s of the
// server's return and their events resume, without a crash or a leaked ffmpeg. /metrics is checked against
// what the sink received; /healthz against the streams' states; SIGHUP and the HTTP endpoints change the
// stream set; SIGTERM ends it with exit 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TimelineEvent } from '../src/types.js';
import { testModelsDir } from './helpers/models.js';
import { assertValidEvents } from './helpers/schema.js';
import { ffmpegChildren, freePort, RtspTestServer, waitFor } from './helpers/rtsp.js';
import { sharedPath } from './helpers/shared.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface Health {
  status: string;
  streams: { id: string; state: string; reason?: string; reconnects: number; analysed: number }[];
}

describe('cafe-stream serve', () => {
  const dir = mkdtempSync(join(tmpdir(), 'serve-'));
  const eventsPath = join(dir, 'events.jsonl');
  const configPath = join(dir, 'cameras.yaml');
  let rtsp: RtspTestServer;
  let serve: ChildProcess;
  let base: string;
  let stderr = '';
  const seenFfmpeg = new Set<number>();
  let sampler: ReturnType<typeof setInterval>;

  const events = (): TimelineEvent[] =>
    existsSync(eventsPath)
      ? readFileSync(eventsPath, 'utf8')
          .split('\n')
          .filter((l) => l.trim() !== '')
          .map((l) => JSON.parse(l) as TimelineEvent)
      : [];
  const health = async (): Promise<Health> => (await fetch(`${base}/healthz`)).json() as Promise<Health>;
  const stateOf = (h: Health, id: string): string | undefined => h.streams.find((s) => s.id === id)?.state;
  const waitHealth = async (what: string, ok: (h: Health) => boolean, ms: number): Promise<Health> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const h = await health();
      if (ok(h)) return h;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(h)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  let modelsDir = '';
  const config = (streams: string[], port: number, httpPort: number): string =>
    [
      'streams:',
      ...streams.flatMap((id) => [`  - id: ${id}`, `    url: rtsp://127.0.0.1:${port}/${id}`, '    sampleFps: 3', '    stallSeconds: 4']),
      `models: ${JSON.stringify(modelsDir)}`,
      'device: cpu',
      'batching: { maxBatch: 8, maxWaitMs: 20 }',
      `sinks: { jsonl: { path: ${JSON.stringify(eventsPath)} } }`,
      `http: { host: 127.0.0.1, port: ${httpPort} }`,
      'reconnect: { initialDelayMs: 300, maxDelayMs: 2000 }',
      'shutdownSeconds: 10',
      '',
    ].join('\n');

  beforeAll(async () => {
    modelsDir = await testModelsDir();
    rtsp = new RtspTestServer(await freePort(), { d0: sharedPath('data', 'videos', 'd0.mp4'), d3: sharedPath('data', 'videos', 'd3.mp4') });
    await rtsp.start();
    const httpPort = await freePort();
    base = `http://127.0.0.1:${httpPort}`;
    writeFileSync(configPath, config(['d0', 'd3'], rtsp.port, httpPort));
    serve = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'cli', 'main.ts'), 'serve', '--config', configPath], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LOG_LEVEL: 'info' },
    });
    serve.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
    serve.stdout?.resume();
    sampler = setInterval(() => {
      if (serve.pid !== undefined) for (const pid of ffmpegChildren(serve.pid)) seenFfmpeg.add(pid);
    }, 200);
    await waitFor('http up', () => stderr.includes('http listening') || (serve.exitCode !== null ? 'exited' : undefined), 60_000);
    expect(serve.exitCode, stderr).toBeNull();
  }, 120_000);

  afterAll(async () => {
    clearInterval(sampler);
    if (serve.exitCode === null) serve.kill('SIGKILL');
    await rtsp.kill();
  });

  it('runs both cameras through three server restarts, with metrics, health, reload and a clean exit', async () => {
    // ---- both online, timelines for both ----
    await waitHealth('both online', (h) => stateOf(h, 'd0') === 'online' && stateOf(h, 'd3') === 'online', 60_000);
    await waitFor(
      'observations for both streams',
      () => ['d0', 'd3'].every((id) => events().some((e) => e.type === 'face.observation' && e.streamId === id)),
      60_000,
      250,
    );
    const starts = events().filter((e) => e.type === 'stream.start');
    expect(starts.map((e) => e.streamId).sort()).toEqual(['d0', 'd3']);

    // ---- three kill/restart cycles ----
    const reconnectMs: number[] = [];
    for (let cycle = 1; cycle <= 3; cycle++) {
      await rtsp.kill();
      // Usually at once (ffmpeg exits 0); on a starved machine ffmpeg may first drain video it had buffered.
      const down = await waitHealth(`cycle ${cycle}: both offline`, (h) => stateOf(h, 'd0') === 'offline' && stateOf(h, 'd3') === 'offline', 45_000);
      expect(down.status).toBe('degraded');
      expect(down.streams.find((s) => s.id === 'd0')?.reason).toMatch(/disconnected|refused|stalled/);
      expect(ffmpegChildren(serve.pid!).length).toBeLessThanOrEqual(2);

      if (cycle === 3) {
        // Nothing flows while both cameras are down: once the pipeline has drained, /metrics must agree
        // exactly with what the sink holds.
        await new Promise((r) => setTimeout(r, 1500));
        const text = await (await fetch(`${base}/metrics`)).text();
        const metric = (name: string, labels: string): number => {
          const m = new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(text);
          if (m === null) throw new Error(`metric ${name}{${labels}} missing`);
          return Number(m[1]);
        };
        const evs = events();
        for (const id of ['d0', 'd3']) {
          const obs = evs.filter((e) => e.type === 'face.observation' && e.streamId === id);
          const frames = new Set(obs.map((e) => (e as { frameId: number }).frameId));
          expect(metric('cafe_stream_faces_total', `stream="${id}"`)).toBe(obs.length);
          expect(metric('cafe_stream_events_total', `stream="${id}",type="face.observation"`)).toBe(obs.length);
          const analysed = metric('cafe_stream_frames_analysed_total', `stream="${id}"`);
          // every frame with an observation was analysed; a face is found on nearly every frame of these clips
          expect(analysed).toBeGreaterThanOrEqual(frames.size);
          expect(frames.size).toBeGreaterThanOrEqual(analysed * 0.8);
          expect(metric('cafe_stream_frames_decoded_total', `stream="${id}"`)).toBeGreaterThanOrEqual(analysed);
          expect(metric('cafe_stream_up', `stream="${id}"`)).toBe(0);
          expect(metric('cafe_stream_reconnects_total', `stream="${id}"`)).toBe(2);
        }
        expect(text).toMatch(/^cafe_model_batch_size_count \d+$/m);
        // every crop was either read by the model (the batch sizes' sum) or carried forward unchanged
        const plain = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
        expect(plain('cafe_model_crops_total')).toBeGreaterThan(0);
        expect(plain('cafe_model_batch_size_sum') + plain('cafe_model_crops_reused_total')).toBe(plain('cafe_model_crops_total'));
        // the shared detector (its thread answers at scrape time): it looked at some of the analysed frames (the
        // live detection interval carries the rest), in as many calls or fewer (several cameras' frames share one)
        const analysedAll = ['d0', 'd3'].reduce((n, id) => n + metric('cafe_stream_frames_analysed_total', `stream="${id}"`), 0);
        expect(plain('cafe_detector_frames_total')).toBeGreaterThan(0);
        expect(plain('cafe_detector_frames_total')).toBeLessThanOrEqual(analysedAll);
        expect(plain('cafe_detector_calls_total')).toBeGreaterThan(0);
        expect(plain('cafe_detector_calls_total')).toBeLessThanOrEqual(plain('cafe_detector_frames_total') + plain('cafe_detector_mosaic_frames_total'));
        expect(plain('cafe_detector_mosaic_frames_total')).toBeLessThanOrEqual(plain('cafe_detector_frames_total'));
        expect(text).toMatch(/^cafe_sink_sent_total\{sink="[^"]+"\} \d+$/m);
      }

      await new Promise((r) => setTimeout(r, 1000));
      await rtsp.start();
      const back = Date.now();
      await waitHealth(`cycle ${cycle}: both online again`, (h) => stateOf(h, 'd0') === 'online' && stateOf(h, 'd3') === 'online', 10_000);
      reconnectMs.push(Date.now() - back);
      // events resume on both streams
      await waitFor(
        `cycle ${cycle}: observations after the restart`,
        () => ['d0', 'd3'].every((id) => events().some((e) => e.type === 'face.observation' && e.streamId === id && e.time * 1000 > back)),
        15_000,
        250,
      );
    }
    expect(serve.exitCode).toBeNull();
    console.log(`serve: reconnect after server return, ms: ${reconnectMs.join(', ')}`);
    const all = events();
    for (const id of ['d0', 'd3']) {
      expect(all.filter((e) => e.type === 'stream.offline' && e.streamId === id)).toHaveLength(3);
      expect(all.filter((e) => e.type === 'stream.online' && e.streamId === id)).toHaveLength(4);
    }
    // Each outage ends the tracks open when it began (track.end reason stream-offline) instead of keeping them
    // open through it: a face seen after the camera is back gets a new track id.
    for (const id of ['d0', 'd3']) {
      const open = new Set<string>();
      const started = new Set<string>();
      let atOutage: Set<string> | undefined;
      let offlineEnds = 0;
      for (const e of all.filter((x) => x.streamId === id)) {
        if (e.type === 'track.start') {
          expect(started.has(e.trackId), `${id}/${e.trackId} started twice`).toBe(false);
          started.add(e.trackId);
          open.add(e.trackId);
        } else if (e.type === 'face.observation') {
          expect(open.has(e.trackId), `${id}/${e.trackId} observed while not open`).toBe(true);
        } else if (e.type === 'track.end') {
          open.delete(e.trackId);
          if (e.reason === 'stream-offline') offlineEnds++;
          if (atOutage?.delete(e.trackId)) expect(e.reason).toMatch(/^(stream-offline|lost)$/);
        } else if (e.type === 'stream.offline') {
          atOutage = new Set(open);
        } else if (e.type === 'stream.online' && atOutage !== undefined) {
          // before the camera is back, every track of before the outage has ended
          expect([...atOutage]).toEqual([]);
        }
      }
      expect(offlineEnds).toBeGreaterThanOrEqual(1);
    }
    // event ids stay unique through reconnects, and every event (online/offline included) fits the schema
    expect(new Set(all.map((e) => e.id)).size).toBe(all.length);
    assertValidEvents(all);

    // ---- add and remove over HTTP: an unreachable camera shows as offline ----
    const add = await fetch(`${base}/streams`, { method: 'POST', body: JSON.stringify({ id: 'ghost', url: `rtsp://127.0.0.1:${await freePort()}/x` }) });
    expect(add.status).toBe(201);
    await waitHealth('ghost offline', (h) => stateOf(h, 'ghost') === 'offline', 15_000);
    expect((await fetch(`${base}/streams/ghost`, { method: 'DELETE' })).status).toBe(204);
    expect(stateOf(await health(), 'ghost')).toBeUndefined();

    // ---- SIGHUP: the file now lists d0 only, so d3 stops (its stream.end says so) ----
    writeFileSync(configPath, readFileSync(configPath, 'utf8').replace(/  - id: d3\n(    .*\n)+?(?=  - |\w)/, ''));
    serve.kill('SIGHUP');
    await waitHealth('d3 removed', (h) => stateOf(h, 'd3') === undefined && stateOf(h, 'd0') === 'online', 15_000);
    const d3end = await waitFor('stream.end of d3', () => events().find((e) => e.type === 'stream.end' && e.streamId === 'd3'), 15_000);
    expect(d3end).toMatchObject({ reason: 'stopped' });

    // ---- SIGTERM: drain, flush, exit 0, no ffmpeg left ----
    const exited = new Promise<number | null>((r) => serve.once('exit', (code) => r(code)));
    serve.kill('SIGTERM');
    const code = await exited;
    expect(code, stderr.slice(-3000)).toBe(0);
    const end = events().find((e) => e.type === 'stream.end' && e.streamId === 'd0');
    expect(end).toMatchObject({ reason: 'stopped' });
    const lines = readFileSync(eventsPath, 'utf8');
    expect(lines.endsWith('\n')).toBe(true);
    expect(seenFfmpeg.size).toBeGreaterThanOrEqual(8); // 2 streams × 4 connections at least
    const alive = [...seenFfmpeg].filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.includes('(ffmpeg)') && !stat.includes(') Z');
      } catch {
        return false;
      }
    });
    expect(alive).toEqual([]);
  }, 170_000);
});
