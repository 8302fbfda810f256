// Retakes the README screenshots from real runs: docs/img/report.png (analyze --report on d12.mp4) and
// docs/img/dashboard.png (serve on two looping RTSP streams, after ~60 s). No faces in either picture.
//   CAFE_SHARED=../shared npx tsx scripts/docs-screenshots.ts [--models models]
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const exec = promisify(execFile);
const root = resolve(import.meta.dirname, '..');
const shared = resolve(root, process.env['CAFE_SHARED'] ?? '../shared');
const modelsArg = process.argv.indexOf('--models');
const models = resolve(root, modelsArg > 0 ? process.argv[modelsArg + 1]! : 'models');
const dashboardSeconds = Number(process.env['DASHBOARD_SECONDS'] ?? 60);
const dir = mkdtempSync(join(tmpdir(), 'cafe-shots-'));
const cli = (args: string[]) => [process.execPath, ['--import', 'tsx', join(root, 'src/cli/main.ts'), ...args]] as const;

const freePort = (): Promise<number> =>
  new Promise((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  headless: true,
});
try {
  // report
  const [bin, args] = cli(['analyze', join(shared, 'data/videos/d12.mp4'), '--models', models, '--out', join(dir, 'd12.jsonl'), '--report', join(dir, 'report.html'), '-q']);
  await exec(bin, args, { cwd: root, timeout: 600_000 });
  // the top of the page: metadata, segments, the track's summary and chart (the config is below)
  const page = await browser.newPage({ viewport: { width: 1000, height: 1060 } });
  await page.goto(`file://${join(dir, 'report.html')}`);
  await page.screenshot({ path: join(root, 'docs/img/report.png') });
  await page.close();
  console.log('docs/img/report.png');

  // dashboard
  const [rtspPort, httpPort] = [await freePort(), await freePort()];
  const env = { ...process.env, RTSP_PIDFILE: join(dir, 'rtsp.pid'), RTSP_LOG: join(dir, 'rtsp.log') };
  await exec(join(root, 'scripts/rtsp-server.sh'), ['start', '--port', String(rtspPort), '--mount', `/d0=${join(shared, 'data/videos/d0.mp4')}`, '--mount', `/d12=${join(shared, 'data/videos/d12.mp4')}`], { env });
  const config = join(dir, 'cameras.yaml');
  writeFileSync(config, [
    'streams:',
    `  - { id: lobby, url: "rtsp://127.0.0.1:${rtspPort}/d0", sampleFps: 5 }`,
    `  - { id: desk, url: "rtsp://127.0.0.1:${rtspPort}/d12", sampleFps: 5 }`,
    `  - { id: parking, url: "rtsp://127.0.0.1:${rtspPort}/missing", sampleFps: 5 }`,
    `models: ${JSON.stringify(models)}`,
    'sinks: { ws: { path: /ws } }',
    `http: { host: 127.0.0.1, port: ${httpPort} }`,
    '',
  ].join('\n'));
  const [sbin, sargs] = cli(['serve', '--config', config]);
  const serve = spawn(sbin, sargs, { cwd: root, stdio: 'ignore' });
  try {
    const p = await browser.newPage({ viewport: { width: 1240, height: 560 } });
    for (let i = 0; i < 240; i++) {
      if (await fetch(`http://127.0.0.1:${httpPort}/healthz`).then((r) => r.ok, () => false)) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    await p.goto(`http://127.0.0.1:${httpPort}/`);
    await p.waitForTimeout(dashboardSeconds * 1000);
    await p.screenshot({ path: join(root, 'docs/img/dashboard.png') });
    console.log('docs/img/dashboard.png');
  } finally {
    serve.kill('SIGTERM');
    await exec(join(root, 'scripts/rtsp-server.sh'), ['stop'], { env }).catch(() => undefined);
  }
} finally {
  await browser.close();
}
