// Files as jobs on the worker group: 10 short clips (made here with ffmpeg from the shared videos) are
// submitted with `cafe-stream submit`; two workers (real detector, tiny test models) take them through the
// jobs consumer group; one is killed with SIGKILL in the middle of a file. Every file gets its job.done, the
// interrupted job is redone by the other worker, and after de-duplication by event id the events of each file
// equal what a single-process `analyze` of that file writes with the worker's pipeline settings (detector on
// every frame), ids and emission times aside, numbers to 1e-4.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobDoneEvent, TimelineEvent } from '../src/types.js';
import { EventTap, startWorker, type WorkerProc } from './helpers/cluster.js';
import { brokerAsync, KAFKA_BOOTSTRAP, uniqueTopic } from './helpers/kafka.js';
import { testModelsDir } from './helpers/models.js';
import { freePort } from './helpers/rtsp.js';
import { assertValidEvents } from './helpers/schema.js';
import { sharedPath } from './helpers/shared.js';

const SAMPLE_FPS = '5';

describe('file jobs on the worker group', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jobs-'));
  const jobsTopic = uniqueTopic('jobs');
  const eventsTopic = uniqueTopic('jobevents');
  const group = `test-jobs-${jobsTopic.slice(-8)}`;
  const files: string[] = [];
  const workers: WorkerProc[] = [];
  let tap: EventTap;
  let models = '';

  beforeAll(async () => {
    await brokerAsync('start');
    models = await testModelsDir();
    const clips: [string, number][] = [['d0.mp4', 0], ['d0.mp4', 1], ['d3.mp4', 0], ['d3.mp4', 2], ['d3.mp4', 4], ['d3.mp4', 6], ['d12.mp4', 0], ['d12.mp4', 3], ['d18.mp4', 0], ['d18.mp4', 3]];
    clips.forEach(([clip, at], i) => {
      const out = join(dir, `job${i}.mp4`);
      execFileSync('ffmpeg', ['-v', 'error', '-y', '-ss', String(at), '-t', '2', '-i', sharedPath('data', 'videos', clip), '-an', '-vf', 'scale=320:-2', '-c:v', 'libx264', '-preset', 'ultrafast', out]);
      files.push(out);
    });
    tap = new EventTap(eventsTopic);
    await tap.start();
  }, 300_000);

  afterAll(async () => {
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
    await Promise.all(workers.map((w) => new Promise((r) => (w.child.exitCode !== null || w.child.signalCode !== null ? r(null) : w.child.once('exit', r)))));
    for (const w of workers) writeFileSync(join(dir, `${w.id}.log`), w.stderr());
    await tap?.stop();
  }, 120_000);

  it('completes every file once per event id although a worker dies mid-file', async () => {
    const args = ['--kafka', KAFKA_BOOTSTRAP, '--group', group, '--cameras-topic', `${jobsTopic}.cams`, '--events-topic', eventsTopic, '--jobs-topic', jobsTopic, '--models', models, '--session-timeout', '6'];
    for (const id of ['j1', 'j2']) workers.push(startWorker(id, await freePort(), args));
    const submitted = execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'submit', ...files, '--kafka', KAFKA_BOOTSTRAP, '--jobs-topic', jobsTopic, '--sample-fps', SAMPLE_FPS, '--json'], { encoding: 'utf8', timeout: 60_000 })
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { jobId: string; file: string; streamId: string });
    expect(submitted.map((j) => j.file)).toEqual(files);

    // kill a worker that is in the middle of a file: it has sent events of a job but not its job.done
    const done = (): JobDoneEvent[] => tap.seen.map((s) => s.event as unknown as JobDoneEvent).filter((e) => e.type === 'job.done');
    const deadline = Date.now() + 240_000;
    let victim: { worker: string; streamId: string } | undefined;
    while (victim === undefined && Date.now() < deadline) {
      const finished = new Set(done().map((d) => `${d.worker}\u0000${d.streamId}`));
      const mid = tap.seen.find((s) => s.event.type === 'face.observation' && !finished.has(`${s.worker}\u0000${s.event.streamId}`) && done().length >= 1);
      if (mid !== undefined) victim = { worker: mid.worker, streamId: mid.event.streamId };
      else await new Promise((r) => setTimeout(r, 20));
    }
    expect(victim, 'never saw a worker mid-file').toBeDefined();
    workers.find((w) => w.id === victim!.worker)!.child.kill('SIGKILL');
    const killedAt = Date.now();

    // every job finishes, ok
    while (new Set(done().map((d) => d.jobId)).size < submitted.length) {
      if (Date.now() > deadline + 120_000) throw new Error(`only ${new Set(done().map((d) => d.jobId)).size}/${submitted.length} jobs done`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const byJob = new Map(done().map((d) => [d.jobId, d]));
    for (const j of submitted) expect(byJob.get(j.jobId)?.status, j.file).toBe('ok');
    // the interrupted file was redone by the survivor
    const redo = done().find((d) => d.streamId === victim!.streamId)!;
    expect(redo.worker).not.toBe(victim!.worker);
    console.log(`jobs: ${victim!.worker} killed during ${victim!.streamId}; redone by ${redo.worker}; all ${submitted.length} jobs done ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill`);

    // ---- the union, de-duplicated by id, equals a single-process analyze of each file ----
    const unique = new Map<string, TimelineEvent>();
    let dupes = 0;
    for (const s of tap.seen) {
      if ((s.event.type as string) === 'job.done') continue;
      if (unique.has(s.event.id)) dupes++;
      else unique.set(s.event.id, s.event);
    }
    const refPath = join(dir, 'ref.jsonl');
    execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'analyze', ...files, '--out', refPath, '--sample-fps', SAMPLE_FPS, '--detect-interval', '1', '--models', models, '--quiet'], { timeout: 240_000 });
    const ref = readFileSync(refPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as TimelineEvent);
    assertValidEvents([...unique.values()]);
    assertValidEvents(done() as unknown as TimelineEvent[]);
    for (const j of submitted) {
      const got = [...unique.values()].filter((e) => e.streamId === j.streamId).map(comparable).sort();
      const want = ref.filter((e) => e.streamId === j.streamId).map(comparable).sort();
      expect(got.length, j.streamId).toBe(want.length);
      got.forEach((g, i) => expectClose(JSON.parse(g), JSON.parse(want[i]!), `${j.streamId}[${i}]`));
      expect(byJob.get(j.jobId)!.events).toBe(want.length);
    }
    console.log(`jobs: ${unique.size} distinct events, ${dupes} duplicates from the redone job dropped by id`);
  }, 600_000);
});

/** An event without what legitimately differs between runs (id, emission time, the file's path in stream.start). */
function comparable(e: TimelineEvent): string {
  const { id: _id, emittedAt: _at, ...rest } = e as TimelineEvent & { emittedAt: string };
  if (rest.type === 'stream.start') (rest as { stream: { source?: string } }).stream.source = '';
  if (rest.type === 'stream.end') return JSON.stringify({ ...rest, time: 0 });
  return JSON.stringify(rest);
}

function expectClose(a: unknown, b: unknown, where: string): void {
  if (typeof a === 'number' && typeof b === 'number') {
    expect(Math.abs(a - b), where).toBeLessThan(1e-4);
  } else if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    expect(Object.keys(a).sort(), where).toEqual(Object.keys(b).sort());
    for (const k of Object.keys(a)) expectClose((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${where}.${k}`);
  } else {
    expect(a, where).toEqual(b);
  }
}
