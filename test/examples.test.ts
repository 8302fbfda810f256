// The three programs in examples/ run as a user runs them (tsx, importing 'cafe-stream'), on real inputs:
// a folder → CSV of per-person segments; a recording standing in for a camera → "anger held for 3 s"
// alerts; a Kafka consumer counting expressions per minute of events the API itself published (toKafka).
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lastValueFrom, tap } from 'rxjs';
import { afterAll, describe, expect, it } from 'vitest';
import { type TimelineEvent, analyze, toKafka } from '../src/index.js';
import { KAFKA_BOOTSTRAP, startBroker, uniqueTopic } from './helpers/kafka.js';
import { RtspTestServer, freePort } from './helpers/rtsp.js';
import { sharedPath } from './helpers/shared.js';
import { tempDir, truncateFile } from './helpers/videos.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tmp = tempDir();
afterAll(() => tmp.cleanup());

function runExample(name: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join('examples', name), ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((res) => child.on('close', (code) => res({ code, stdout, stderr })));
}

describe('examples/', () => {
  it('folder-to-csv.ts: one row per person and segment; a bad file is named and skipped', async () => {
    const dir = join(tmp.dir, 'recordings');
    mkdirSync(dir);
    copyFileSync(sharedPath('data', 'videos', 'd0.mp4'), join(dir, 'd0.mp4'));
    copyFileSync(sharedPath('data', 'images', 'faces.jpg'), join(dir, 'group.jpg'));
    truncateFile(sharedPath('data', 'videos', 'd0.mp4'), join(dir, 'broken.mp4'));
    writeFileSync(join(dir, 'notes.txt'), 'not a recording\n');
    const out = join(tmp.dir, 'segments.csv');
    const r = await runExample('folder-to-csv.ts', [dir, out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/skipped broken\.mp4: truncated/);
    const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => l.split(','));
    expect(rows[0]).toEqual(['"file"', '"person"', '"expression"', '"start_s"', '"end_s"', '"observations"']);
    const d0 = rows.filter((r) => r[0] === '"d0.mp4"');
    expect(d0.map((r) => r[2])).toContain('"happiness"');
    expect(new Set(rows.filter((r) => r[0] === '"group.jpg"').map((r) => r[1])).size).toBe(6);
    for (const r of rows.slice(1)) expect(Number(r[4])).toBeGreaterThanOrEqual(Number(r[3]));
  });

  it('held-expression.ts: an alert per 3-s hold of anger, none for happiness that lasts under 3 s', async () => {
    const angry = await runExample('held-expression.ts', [sharedPath('data', 'clips', 'styletalk_furious_talk1_clip2.mp4'), 'anger', '3']);
    expect(angry.code, angry.stderr).toBe(0);
    const alerts = angry.stdout.trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { expression: string; since: number; at: number });
    // one alert per hold: the furious clip holds anger for 3 s or more once or twice (a 0.3-s smile between)
    expect(alerts.length).toBeGreaterThanOrEqual(1);
    expect(alerts.length).toBeLessThanOrEqual(2);
    for (const [i, a] of alerts.entries()) {
      expect(a.expression).toBe('anger');
      expect(a.at - a.since).toBeGreaterThanOrEqual(3);
      if (i > 0) expect(a.since).toBeGreaterThan(alerts[i - 1]!.at);
    }
    const brief = await runExample('held-expression.ts', [sharedPath('data', 'videos', 'd0.mp4'), 'happiness', '3']);
    expect(brief.code, brief.stderr).toBe(0);
    expect(brief.stdout).toBe('');
  });

  it('held-expression.ts on a live camera (the RTSP test server looping the furious clip): an alert, then Ctrl-C exits 0', async () => {
    const server = new RtspTestServer(await freePort(), { furious: sharedPath('data', 'clips', 'styletalk_furious_talk1_clip2.mp4') });
    await server.start();
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', join('examples', 'held-expression.ts'), server.url('furious'), 'anger', '3'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const code = new Promise<number | null>((res) => child.on('close', res));
      await new Promise<void>((res, rej) => {
        child.stdout.setEncoding('utf8').on('data', (d: string) => {
          stdout += d;
          if (stdout.includes('\n')) res();
        });
        void code.then(() => rej(new Error(`exited before an alert: ${stderr}`)));
      });
      child.kill('SIGINT');
      expect(await code, stderr).toBe(0);
      const alert = JSON.parse(stdout.split('\n')[0]!) as { expression: string; since: number; at: number };
      expect(alert.expression).toBe('anger');
      expect(alert.since).toBeGreaterThan(1.7e9); // wall clock: a camera
      expect(alert.at - alert.since).toBeGreaterThanOrEqual(3);
    } finally {
      await server.kill();
    }
  });

  it('kafka-per-minute.ts: per-minute counts of what analyze() | toKafka() published', async () => {
    startBroker();
    const topic = uniqueTopic('per-minute');
    const published: TimelineEvent[] = [];
    await lastValueFrom(analyze(sharedPath('data', 'videos', 'd0.mp4'), { device: 'cpu', sampleFps: 10 }).pipe(toKafka({ brokers: [KAFKA_BOOTSTRAP], topic, createTopic: true, partitions: 1 }), tap((e) => published.push(e))));
    const r = await runExample('kafka-per-minute.ts', [KAFKA_BOOTSTRAP, topic, '--from-beginning', '--streams', '1']);
    expect(r.code, r.stderr).toBe(0);
    const expected: Record<string, number> = {};
    for (const e of published) if (e.type === 'face.observation') expected[e.label] = (expected[e.label] ?? 0) + 1;
    expect(Object.keys(expected).length).toBeGreaterThan(0);
    expect(r.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([{ streamId: 'd0.mp4', minute: '0', counts: expected }]);
  });
});
