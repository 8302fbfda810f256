// `analyze --report`: the real CLI writes report.html, which is opened in Debian's Chromium with every
// request outside file:/data: counted (a self-contained page makes none).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENT_SCHEMA_VERSION, EXPRESSIONS, type Expression, type TimelineEvent } from '../src/types.js';
import { renderReport } from '../src/views/report.js';
import { sharedPath } from './helpers/shared.js';
import { anyModelsDir, artifactPath, launchChromium, readJsonl, realModelsDir, runCli } from './helpers/views.js';

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

/** Opens a report; returns the page and the list of requests that left file:/data:. */
async function openReport(path: string): Promise<{ page: Page; external: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const external: string[] = [];
  page.on('request', (r) => {
    if (!/^(file|data|about):/.test(r.url())) external.push(r.url());
  });
  await page.goto(pathToFileURL(path).href);
  return { page, external };
}

describe('analyze --report --thumbnails (structure)', () => {
  let dir: string;
  let events: TimelineEvent[];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cafe-report-test-'));
    const models = await anyModelsDir();
    const run = await runCli([
      'analyze', sharedPath('data', 'videos', 'd0.mp4'), '--models', models,
      '--out', join(dir, 'events.jsonl'), '--report', join(dir, 'report.html'), '--thumbnails',
    ]);
    expect(run.code, run.stderr).toBe(0);
    events = readJsonl(join(dir, 'events.jsonl'));
  }, 600_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is one self-contained page with metadata, segments, a chart and a thumbnail per track, and the config', async () => {
    const { page, external } = await openReport(join(dir, 'report.html'));
    expect(await page.locator('#metadata').innerText()).toContain('512×512');
    const tracks = events.filter((e) => e.type === 'track.end');
    const segments = events.filter((e) => e.type === 'face.segment');
    expect(tracks.length).toBeGreaterThan(0);
    expect(await page.locator('article.track').count()).toBe(tracks.length);
    expect(await page.locator('article.track svg.chart').count()).toBe(tracks.length);
    expect(await page.locator('svg.chart path[data-expression]').count()).toBe(tracks.length * EXPRESSIONS.length);
    expect(await page.locator('#segments tbody tr').count()).toBe(segments.length);
    expect(await page.locator('img.thumb').count()).toBe(tracks.length);
    const thumbOk = await page.locator('img.thumb').first().evaluate((img) => (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth > 0);
    expect(thumbOk).toBe(true);
    expect(await page.locator('#config pre').innerText()).toContain('d0.mp4');
    expect(external).toEqual([]);
    await page.close();
  });
});

describe('analyze --report with the shipped models', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cafe-report-real-'));
    const run = await runCli(['analyze', sharedPath('data', 'videos', 'd0.mp4'), '--models', realModelsDir(), '--report', join(dir, 'report.html')]);
    expect(run.code, run.stderr).toBe(0);
  }, 600_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('shows the happiness segment in the middle of d0.mp4, and no face pixels by default', async () => {
    const { page, external } = await openReport(join(dir, 'report.html'));
    const rows = page.locator('#segments tbody tr[data-label="happiness"]');
    expect(await rows.count()).toBeGreaterThan(0);
    const cells = (await rows.first().locator('td').allInnerTexts()).map((s) => s.trim());
    const [start, end] = [Number(cells[2]), Number(cells[3])];
    // d0: neutral → broad smile → neutral (3.1 s): the smile is neither at the very start nor the very end
    expect(start).toBeGreaterThan(0.2);
    expect(end).toBeLessThan(3.0);
    expect(await page.locator('img').count()).toBe(0);
    expect(external).toEqual([]);
    await page.screenshot({ path: await artifactPath('report.png'), fullPage: true });
    await page.close();
  });
});

describe('renderReport (pure)', () => {
  const mk = (type: string, time: number, extra: object): TimelineEvent =>
    ({ id: `${type}-${time}`, schemaVersion: EVENT_SCHEMA_VERSION, streamId: 'x.mp4', time, emittedAt: '2025-01-01T00:00:00Z', type, ...extra }) as TimelineEvent;
  const probs = (top: Expression): Record<Expression, number> =>
    Object.fromEntries(EXPRESSIONS.map((e) => [e, e === top ? 0.7 : 0.05])) as Record<Expression, number>;

  it('escapes what came from the user and embeds no face without thumbnails', () => {
    const events = [
      mk('stream.start', 0, { stream: { streamId: 'x.mp4', source: '<script>alert(1)</script>.mp4', kind: 'file', clock: 'media', width: 8, height: 8 } }),
      mk('face.observation', 0, { trackId: 't1', frameId: 0, box: { x: 0, y: 0, width: 4, height: 4 }, probabilities: probs('anger'), label: 'anger', confidence: 0.7 }),
      mk('face.segment', 0.5, { trackId: 't1', label: 'anger', start: 0, end: 0.5, observations: 1, meanProbabilities: probs('anger') }),
    ];
    const html = renderReport(events, { config: { note: '</pre><b>x</b>' } });
    expect(html).not.toContain('<script>alert(1)');
    expect(html).not.toContain('</pre><b>');
    expect(html).toContain('&lt;script&gt;');
    expect(html).not.toMatch(/<img|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    expect(html).toContain('data-label="anger"');
  });
});
