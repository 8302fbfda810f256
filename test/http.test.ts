// The HTTP layer of `serve`: routes, status codes, error bodies naming the bad key, static files kept inside
// their folder, and /metrics in Prometheus text with the figures it was fed. The stream set behind it is a
// small in-memory StreamControl here; test/serve.test.ts runs the real one.
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseStreamConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { LiveMetrics } from '../src/http/metrics.js';
import { LiveHttpServer, type StreamControl, type StreamView } from '../src/http/server.js';
import type { Sink } from '../src/types.js';

function memoryControl(): StreamControl & { views: Map<string, StreamView> } {
  const views = new Map<string, StreamView>();
  return {
    views,
    list: () => [...views.values()],
    async add(body) {
      const cfg = parseStreamConfig(body);
      if (views.has(cfg.id)) throw new ConfigError('id', `stream "${cfg.id}" already exists`);
      const v: StreamView = { id: cfg.id, url: cfg.url, state: 'connecting', lastFrameAgeSeconds: null, reconnects: 0, decoded: 0, analysed: 0, skipped: 0, faces: 0 };
      views.set(cfg.id, v);
      return v;
    },
    async remove(id) {
      return views.delete(id);
    },
  };
}

describe('live HTTP server', () => {
  const control = memoryControl();
  const metrics = new LiveMetrics({ defaultMetrics: false });
  const root = mkdtempSync(join(tmpdir(), 'http-'));
  const staticDir = join(root, 'static');
  let http: LiveHttpServer;
  let base: string;
  let decoded = 0;

  beforeAll(async () => {
    mkdirSync(join(staticDir, 'assets'), { recursive: true });
    writeFileSync(join(staticDir, 'index.html'), '<h1>dash</h1>');
    writeFileSync(join(staticDir, 'assets', 'app.js'), 'console.log(1)');
    writeFileSync(join(root, 'secret.txt'), 'no');
    http = new LiveHttpServer({ metrics, streams: control, log: pino({ level: 'silent' }), staticDir });
    const addr = await http.listen('127.0.0.1', 0);
    expect(addr.address).toBe('127.0.0.1');
    base = `http://127.0.0.1:${addr.port}`;
  });
  afterAll(() => http.close());

  it('adds, lists and removes streams; a bad body names the key; an existing id is a conflict', async () => {
    const post = (body: unknown) => fetch(`${base}/streams`, { method: 'POST', body: JSON.stringify(body) });
    const ok = await post({ id: 'cam', url: 'rtsp://127.0.0.1:1/x' });
    expect(ok.status).toBe(201);
    expect(await ok.json()).toMatchObject({ id: 'cam', state: 'connecting' });
    const bad = await post({ id: 'cam2', url: 'rtsp://h/x', smaplefps: 2 });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ key: 'smaplefps', code: 'CS_ERR_CONFIG' });
    expect((await post({ id: 'cam', url: 'rtsp://h/y' })).status).toBe(409);
    expect((await fetch(`${base}/streams`, { method: 'POST', body: '{nope' })).status).toBe(400);

    const health = await (await fetch(`${base}/healthz`)).json();
    expect(health).toMatchObject({ status: 'degraded', streams: [{ id: 'cam', state: 'connecting' }] });

    expect((await fetch(`${base}/streams/cam`, { method: 'DELETE' })).status).toBe(204);
    expect((await fetch(`${base}/streams/cam`, { method: 'DELETE' })).status).toBe(404);
    expect(await (await fetch(`${base}/streams`)).json()).toEqual([]);
    expect((await (await fetch(`${base}/healthz`)).json()).status).toBe('ok');
  });

  it('serves /metrics in Prometheus text with the figures it was fed', async () => {
    metrics.addStream('cam', { decoded: () => decoded, skipped: () => 3, reconnects: () => 2, online: () => true, lastFrameAge: () => 0.5 });
    const sink: Sink = {
      name: 'jsonl',
      write: async () => undefined,
      flush: async () => undefined,
      close: async () => undefined,
      stats: () => ({ sent: 41, buffered: 1, dropped: 0 }),
    };
    metrics.addSinks([sink]);
    decoded = 120;
    for (let i = 0; i < 7; i++) metrics.frameAnalysed('cam', 2, Date.now() / 1000 - 0.2);
    metrics.batchSize.observe(4);
    metrics.modelLatency.observe(0.02);
    metrics.queueDepth.set(5);
    const res = await fetch(`${base}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    const value = (line: string): number => Number(new RegExp(`^${line.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(value('cafe_stream_frames_decoded_total{stream="cam"}')).toBe(120);
    expect(value('cafe_stream_frames_analysed_total{stream="cam"}')).toBe(7);
    expect(value('cafe_stream_frames_skipped_total{stream="cam"}')).toBe(3);
    expect(value('cafe_stream_faces_total{stream="cam"}')).toBe(14);
    expect(value('cafe_stream_reconnects_total{stream="cam"}')).toBe(2);
    expect(value('cafe_stream_up{stream="cam"}')).toBe(1);
    expect(value('cafe_model_batch_size_count')).toBe(1);
    expect(value('cafe_model_queue_depth')).toBe(5);
    expect(value('cafe_sink_sent_total{sink="jsonl"}')).toBe(41);
    expect(value('cafe_sink_buffered{sink="jsonl"}')).toBe(1);
    expect(value('cafe_stream_latency_seconds_count{stream="cam"}')).toBe(7);
    expect(text).toMatch(/^cafe_stream_decoded_fps\{stream="cam"\} /m);
  });

  it('has an fps figure at the first scrape: the window starts when the stream was added', async () => {
    const m = new LiveMetrics({ defaultMetrics: false });
    let decoded = 0;
    m.addStream('cam', { decoded: () => decoded, skipped: () => 0, reconnects: () => 0, online: () => true, lastFrameAge: () => 0 });
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 200));
      decoded++;
      m.frameAnalysed('cam', 1, Date.now() / 1000);
    }
    const text = await m.text();
    const fps = (name: string): number => Number(new RegExp(`^${name}\\{stream="cam"\\} ([\\d.]+)`, 'm').exec(text)?.[1]);
    // 3 frames in ~0.6 s: about 5 per second (it read 0 until a second scrape before)
    expect(fps('cafe_stream_analysed_fps')).toBeGreaterThan(2);
    expect(fps('cafe_stream_decoded_fps')).toBeGreaterThan(2);
  });

  it('serves the static hook from its folder only, and 404s unknown routes', async () => {
    const index = await fetch(`${base}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toMatch(/text\/html/);
    expect(await index.text()).toBe('<h1>dash</h1>');
    expect(await (await fetch(`${base}/assets/app.js`)).text()).toBe('console.log(1)');
    expect((await fetch(`${base}/assets/%2e%2e/%2e%2e/secret.txt`)).status).toBe(404);
    expect((await fetch(`${base}/assets/nothing.js`)).status).toBe(404);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });
});
