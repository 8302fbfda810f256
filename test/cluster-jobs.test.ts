// Files as jobs on the worker group under a fault: 6 six-second clips (made here with ffmpeg from the shared
// videos) are submitted with `cafe-stream submit`; three workers (real detector, tiny test models) take them
// through the jobs consumer group, one job at a time each; when all three are busy with a file, one is killed
// with SIGKILL. Checked:
// - exactly one job.done per job (6 job.done messages for 6 jobs, not 6 distinct ids among more), all ok;
// - no job on two workers at once: per job, the emission times of each worker's events never overlap another
//   worker's (the killed worker's job is redone by a survivor only after it died);
// - both survivors are still members of the jobs group afterwards, from the broker (describeGroups) and from
//   their /healthz;
// - after de-duplication by event id the events of each file equal what a single-process `analyze` of that
//   file writes with the worker's pipeline settings (detector on every frame), ids and emission times aside,
//   numbers to 1e-4.
// Then a worker busy with a file is stopped with SIGTERM: the events of its aborted job stop where it was (no
// stream.end of the abort), each is repeated, same id and content, by the worker that redoes the job, and each
// job still gets one job.done. Last (it stops the broker, which the event reader does not survive), the broker
// is stopped until the workers' consumers crash out of their groups: a worker's /healthz answers 503
// "unhealthy" naming the group, and once the broker is back it rejoins both groups by itself (restarts
// counted in /metrics).
import { LIVE_DETECT_INTERVAL } from '../src/pipeline/options.js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobDoneEvent, TimelineEvent } from '../src/types.js';
import { Kafka, logLevel } from 'kafkajs';
import { EventTap, startWorker, workerHealth, type WorkerProc } from './helpers/cluster.js';
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
    const clips: [string, number][] = [['d0.mp4', 0], ['d3.mp4', 0], ['d3.mp4', 6], ['d12.mp4', 0], ['d18.mp4', 0], ['d18.mp4', 3]];
    clips.forEach(([clip, at], i) => {
      const out = join(dir, `job${i}.mp4`);
      execFileSync('ffmpeg', ['-v', 'error', '-y', '-ss', String(at), '-t', '6', '-i', sharedPath('data', 'videos', clip), '-an', '-vf', 'scale=320:-2', '-c:v', 'libx264', '-preset', 'ultrafast', out]);
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

  it('runs every file once, with one job.done each, although a busy worker dies mid-file', async () => {
    const args = ['--kafka', KAFKA_BOOTSTRAP, '--group', group, '--cameras-topic', `${jobsTopic}.cams`, '--events-topic', eventsTopic, '--jobs-topic', jobsTopic, '--models', models];
    for (const id of ['j1', 'j2', 'j3']) workers.push(startWorker(id, await freePort(), args));
    const jobsOf = async (w: WorkerProc): Promise<JobsHealth | undefined> => ((await workerHealth(w)) as { worker?: { jobs?: JobsHealth } } | undefined)?.worker?.jobs;
    // every worker in the jobs group with its share of the partitions before anything is submitted
    await until('3 workers in the jobs group, 2 partitions each', async () => {
      const js = await Promise.all(workers.map(jobsOf));
      return js.every((j) => j?.membership.member === true && j.membership.partitions.length === 2);
    });
    const submitted = execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'submit', ...files, '--kafka', KAFKA_BOOTSTRAP, '--jobs-topic', jobsTopic, '--sample-fps', SAMPLE_FPS, '--json'], { encoding: 'utf8', timeout: 60_000 })
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { jobId: string; file: string; streamId: string });
    expect(submitted.map((j) => j.file)).toEqual(files);

    // kill a worker while all three are in the middle of a file
    const done = (): JobDoneEvent[] => tap.seen.map((s) => s.event as unknown as JobDoneEvent).filter((e) => e.type === 'job.done');
    let victim: { worker: WorkerProc; jobId: string } | undefined;
    await until('all three workers busy with a file', async () => {
      const js = await Promise.all(workers.map(jobsOf));
      if (!js.every((j) => j?.current !== null && j?.current !== undefined)) return false;
      // mid-file: it has delivered events of its job already
      const w = workers[1]!;
      const cur = js[1]!.current!;
      const job = submitted.find((j) => j.jobId === cur.jobId)!;
      if (!tap.seen.some((s) => s.worker === w.id && s.event.streamId === job.streamId && s.event.type === 'face.observation')) return false;
      victim = { worker: w, jobId: cur.jobId };
      return true;
    }, 240_000, 100);
    victim!.worker.child.kill('SIGKILL');
    const killedAt = Date.now();
    const victimJob = submitted.find((j) => j.jobId === victim!.jobId)!;

    await until(`all ${submitted.length} jobs done`, async () => new Set(done().map((d) => d.jobId)).size >= submitted.length, 360_000, 250);
    await new Promise((r) => setTimeout(r, 3000)); // a second job.done, if any, would come now
    const byJob = new Map(done().map((d) => [d.jobId, d]));
    for (const j of submitted) expect(byJob.get(j.jobId)?.status, j.file).toBe('ok');
    // exactly one job.done per job: counted as messages, not as distinct ids
    expect(done().length).toBe(submitted.length);
    const redo = byJob.get(victim!.jobId)!;
    expect(redo.worker).not.toBe(victim!.worker.id);
    console.log(`jobs: ${victim!.worker.id} killed during ${victimJob.streamId}; redone by ${redo.worker}; all ${submitted.length} jobs done ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill, ${done().length} job.done`);

    // no job on two workers at once: each worker's stretch of a job's events (emission times) stands alone
    for (const j of submitted) {
      const spans = new Map<string, [number, number]>();
      for (const s of tap.seen) {
        if (s.event.streamId !== j.streamId || (s.event.type as string) === 'job.done') continue;
        const at = Date.parse((s.event as unknown as { emittedAt: string }).emittedAt);
        const cur = spans.get(s.worker) ?? [at, at];
        spans.set(s.worker, [Math.min(cur[0], at), Math.max(cur[1], at)]);
      }
      const list = [...spans.values()].sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < list.length; i++) expect(list[i - 1]![1], `${j.streamId}: two workers at once (${[...spans.keys()].join(', ')})`).toBeLessThan(list[i]![0]);
      if (j.jobId !== victim!.jobId) expect(spans.size, `${j.streamId} ran on ${[...spans.keys()].join(', ')}`).toBe(1);
    }

    // both survivors are still in the jobs group: the broker says so, and so does their /healthz
    const admin = new Kafka({ clientId: 'test-jobs-admin', brokers: [KAFKA_BOOTSTRAP], logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      await until('the jobs group without the dead worker', async () => {
        const { groups } = await admin.describeGroups([`${group}.jobs`]);
        const clients = groups[0]!.members.map((m) => m.clientId).sort();
        return groups[0]!.state === 'Stable' && clients.length === 2;
      }, 60_000);
      const { groups } = await admin.describeGroups([`${group}.jobs`]);
      const survivors = workers.filter((w) => w !== victim!.worker);
      expect(groups[0]!.members.map((m) => m.clientId).sort()).toEqual(survivors.map((w) => `cafe-stream-worker-${w.id}`).sort());
      for (const w of survivors) expect((await jobsOf(w))?.membership.member, w.id).toBe(true);
    } finally {
      await admin.disconnect();
    }

    // ---- the union, de-duplicated by id, equals a single-process analyze of each file ----
    const unique = new Map<string, TimelineEvent>();
    let dupes = 0;
    for (const s of tap.seen) {
      if ((s.event.type as string) === 'job.done') continue;
      if (unique.has(s.event.id)) dupes++;
      else unique.set(s.event.id, s.event);
    }
    const refPath = join(dir, 'ref.jsonl');
    execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'analyze', ...files, '--out', refPath, '--sample-fps', SAMPLE_FPS, '--detect-interval', String(LIVE_DETECT_INTERVAL), '--models', models, '--quiet'], { timeout: 240_000 });
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
  }, 900_000);

  it('a worker stopped with SIGTERM mid-file: the events of its job stop where it was, the redo repeats them with the same ids, one job.done', async () => {
    // ten seconds each (d3 is the one long clip): long enough to be caught mid-file
    const extra = [0.5, 1.5].map((at, i) => {
      const out = join(dir, `late${i}.mp4`);
      execFileSync('ffmpeg', ['-v', 'error', '-y', '-ss', String(at), '-t', '10', '-i', sharedPath('data', 'videos', 'd3.mp4'), '-an', '-vf', 'scale=320:-2', '-c:v', 'libx264', '-preset', 'ultrafast', out]);
      return out;
    });
    const alive = workers.filter((x) => x.child.exitCode === null && x.child.signalCode === null);
    expect(alive.length).toBe(2);
    const jobs = execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'submit', ...extra, '--kafka', KAFKA_BOOTSTRAP, '--jobs-topic', jobsTopic, '--sample-fps', SAMPLE_FPS, '--json'], { encoding: 'utf8', timeout: 60_000 })
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { jobId: string; streamId: string });
    let stopped: { worker: WorkerProc; job: { jobId: string; streamId: string } } | undefined;
    await until('a worker mid-file with one of the new jobs', async () => {
      for (const w of alive) {
        const cur = ((await workerHealth(w)) as { worker?: { jobs?: JobsHealth } } | undefined)?.worker?.jobs?.current;
        const job = jobs.find((j) => j.jobId === cur?.jobId);
        if (job !== undefined && tap.seen.some((x) => x.worker === w.id && x.event.streamId === job.streamId && x.event.type === 'face.observation')) {
          stopped = { worker: w, job };
          return true;
        }
      }
      return false;
    }, 240_000, 100);
    const { worker, job } = stopped!;
    worker.child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => (worker.child.exitCode !== null ? r(worker.child.exitCode) : worker.child.once('exit', (c) => r(c))));
    expect(code).toBe(0);
    const doneOf = (jobId: string): JobDoneEvent[] => tap.seen.map((x) => x.event as unknown as JobDoneEvent).filter((e) => e.type === 'job.done' && e.jobId === jobId);
    await until('both new jobs done', async () => jobs.every((j) => doneOf(j.jobId).length >= 1), 240_000, 250);
    await new Promise((r) => setTimeout(r, 2000));
    for (const j of jobs) expect(doneOf(j.jobId).map((d) => d.status), j.streamId).toEqual(['ok']);
    // what the stopped worker delivered of its job: no stream.end or track.end of the abort, only events the
    // complete run by the other worker wrote too, with the same id and the same content
    const mine = tap.seen.filter((x) => x.worker === worker.id && x.event.streamId === job.streamId);
    const redo = new Map(tap.seen.filter((x) => x.worker !== worker.id && x.event.streamId === job.streamId).map((x) => [x.event.id, comparable(x.event)]));
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.filter((x) => x.event.type === 'stream.end').length).toBe(0);
    for (const x of mine) {
      const theirs = redo.get(x.event.id);
      expect(theirs, `${x.event.type} ${x.event.id} of the stopped worker is not in the redo`).toBeDefined();
      expectClose(JSON.parse(comparable(x.event)), JSON.parse(theirs!), `${job.streamId} ${x.event.type}`);
    }
    console.log(`jobs: ${worker.id} stopped (SIGTERM) during ${job.streamId} after ${mine.length} events; the redo repeated all of them by id; one job.done each`);
  }, 400_000);

  it('a worker left outside its group says so (503 unhealthy) and rejoins by itself', async () => {
    // the broker away long enough for the workers' consumers to crash out of both groups
    const w = workers.find((x) => x.child.exitCode === null && x.child.signalCode === null)!;
    const health = async (): Promise<{ code: number; body: { status: string; unhealthy?: string[]; worker?: { membership: { member: boolean }; jobs?: JobsHealth } } } | undefined> => {
      try {
        const res = await fetch(`http://127.0.0.1:${w.httpPort}/healthz`, { signal: AbortSignal.timeout(2000) });
        return { code: res.status, body: (await res.json()) as never };
      } catch {
        return undefined;
      }
    };
    await brokerAsync('stop');
    try {
      await until('the worker reports itself outside its groups', async () => (await health())?.code === 503, 90_000);
      const h = (await health())!;
      expect(h.body.status).toBe('unhealthy');
      expect(h.body.unhealthy?.join('; ')).toMatch(/not a member of group/);
    } finally {
      await brokerAsync('start');
    }
    await until('the worker back in both groups', async () => {
      const h = await health();
      return h?.code === 200 && h.body.worker?.membership.member === true && h.body.worker.jobs?.membership.member === true;
    }, 120_000);
    const metrics = await (await fetch(`http://127.0.0.1:${w.httpPort}/metrics`)).text();
    const restarts = Number(new RegExp(`^cafe_worker_group_restarts_total\\{group="${group}.jobs"\\} (\\d+)$`, 'm').exec(metrics)?.[1]);
    expect(restarts).toBeGreaterThanOrEqual(1);
    expect(metrics).toContain(`cafe_worker_group_member{group="${group}.jobs"} 1`);
    console.log(`jobs: ${w.id} outside its groups while the broker was away (503), back in both after it returned; jobs group restarts ${restarts}`);
  }, 300_000);
});

interface JobsHealth {
  current: { jobId: string } | null;
  membership: { member: boolean; partitions: number[] };
}

/** Polls `ok` every `everyMs` until it holds. */
async function until(what: string, ok: () => Promise<boolean>, timeoutMs = 120_000, everyMs = 500): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

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
