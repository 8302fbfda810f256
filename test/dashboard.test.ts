// The live dashboard in headless Chromium against a real `serve` run: a looping RTSP stream from the local
// GStreamer server, the real detector and models, the WebSocket sink feeding the page and a JSONL sink on
// the same run to compare with. Then the RTSP server is stopped and the page must say the stream is offline.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FaceObservationEvent } from '../src/types.js';
import { sharedPath } from './helpers/shared.js';
import { anyModelsDir, artifactPath, launchChromium, readJsonl, repoRoot } from './helpers/views.js';

const exec = promisify(execFile);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

describe('dashboard on a live serve run', () => {
  let dir: string;
  let rtspPort: number;
  let httpPort: number;
  let serve: ChildProcess | undefined;
  let serveLog = '';
  let browser: Browser;
  let page: Page;
  const env = (): NodeJS.ProcessEnv => ({ ...process.env, RTSP_PIDFILE: join(dir, 'rtsp.pid'), RTSP_LOG: join(dir, 'rtsp.log') });
  let configPath: string;
  const startServe = async (): Promise<void> => {
    serve = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'cli', 'main.ts'), 'serve', '--config', configPath], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    serve.stdout!.on('data', (c: Buffer) => (serveLog += c.toString()));
    serve.stderr!.on('data', (c: Buffer) => (serveLog += c.toString()));
    await waitFor('serve /healthz', async () => (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).ok || undefined, 120_000);
  };
  const stopServe = async (): Promise<void> => {
    const proc = serve;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(t);
  };
  const rtsp = (...args: string[]): Promise<{ stdout: string }> =>
    exec(join(repoRoot, 'scripts', 'rtsp-server.sh'), args, { env: env(), timeout: 90_000 });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cafe-dashboard-test-'));
    [rtspPort, httpPort] = [await freePort(), await freePort()];
    await rtsp('start', '--port', String(rtspPort), '--mount', `/d0=${sharedPath('data', 'videos', 'd0.mp4')}`);
    const models = await anyModelsDir();
    const config = join(dir, 'cameras.yaml');
    writeFileSync(
      config,
      [
        'streams:',
        `  - { id: cam, url: "rtsp://127.0.0.1:${rtspPort}/d0", sampleFps: 8, stallSeconds: 3 }`,
        `models: ${JSON.stringify(models)}`,
        'sinks:',
        `  jsonl: { path: ${JSON.stringify(join(dir, 'events.jsonl'))} }`,
        '  ws: { path: /ws }',
        `http: { host: 127.0.0.1, port: ${httpPort} }`,
        'reconnect: { initialDelayMs: 500, maxDelayMs: 2000 }',
        '',
      ].join('\n'),
    );
    configPath = config;
    await startServe();
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1200, height: 700 } });
    await page.goto(`http://127.0.0.1:${httpPort}/`);
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await stopServe();
    if (dir && existsSync(join(dir, 'rtsp.pid'))) await rtsp('stop').catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('shows the stream online and a track whose label matches the events on the sink', async () => {
    const state = page.locator('[data-stream="cam"] .state');
    await waitFor('stream online on the page', async () => ((await state.getAttribute('data-state')) === 'online' ? true : undefined), 90_000);

    // The page's label for a track must equal the newest label the JSONL sink has for that track.
    const match = await waitFor(
      'a track label shown that matches the sink',
      async () => {
        const shown = await page.locator('[data-stream="cam"] .track').evaluateAll((els) =>
          els.map((el) => ({ track: (el as HTMLElement).dataset['track'], label: el.querySelector('.label')?.textContent ?? '' })),
        );
        const path = join(dir, 'events.jsonl');
        if (!existsSync(path) || readFileSync(path, 'utf8') === '') return undefined;
        const obs = readJsonl(path).filter((e): e is FaceObservationEvent => e.type === 'face.observation' && e.streamId === 'cam');
        for (const s of shown) {
          const last = obs.filter((o) => o.trackId === s.track).at(-1);
          if (last && s.label === last.label) return { ...s, observations: obs.length };
        }
        return undefined;
      },
      90_000,
    );
    expect(match.label).toMatch(/^(surprise|fear|disgust|happiness|sadness|anger|neutral)$/);
    // the canvas has been drawn on (not blank)
    const inked = await page
      .locator(`[data-stream="cam"] .track[data-track="${match.track}"] canvas`)
      .evaluate((c) => {
        const canvas = c as HTMLCanvasElement;
        const d = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i]! > 0) n++;
        return n;
      });
    expect(inked).toBeGreaterThan(50);
    await page.screenshot({ path: await artifactPath('dashboard-online.png') });
  });

  it('shows the stream offline once the RTSP server is stopped', async () => {
    await rtsp('stop');
    const state = page.locator('[data-stream="cam"] .state');
    await waitFor('stream offline on the page', async () => ((await state.getAttribute('data-state')) === 'offline' ? true : undefined), 60_000);
    expect(await page.locator('[data-stream="cam"] .reason').innerText()).not.toBe('');
    await page.screenshot({ path: await artifactPath('dashboard-offline.png') });
    expect(serve?.exitCode, serveLog.slice(-2000)).toBeNull();
  });

  it('reconnects by itself after the server restarts', async () => {
    const conn = page.locator('#conn');
    await stopServe();
    await waitFor('the page to notice the server is gone', async () => ((await conn.getAttribute('data-state')) !== 'open' ? true : undefined), 30_000);
    await startServe();
    await waitFor('the page to reconnect', async () => ((await conn.getAttribute('data-state')) === 'open' ? true : undefined), 60_000);
    // the new server's /healthz and WebSocket feed the same card again (the RTSP server is still down)
    const state = page.locator('[data-stream="cam"] .state');
    const fresh = await waitFor(
      'a state from the new server',
      async () => {
        const v = await state.getAttribute('data-state');
        return v === 'offline' || v === 'connecting' ? v : undefined;
      },
      30_000,
    );
    expect(fresh).toMatch(/^(offline|connecting)$/);
    expect(await page.locator('section.stream[data-stream="cam"]').count()).toBe(1); // the same card, not a second one
  });
});
