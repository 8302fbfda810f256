// The worker group end to end on one machine: a real broker, looping RTSP cameras (the local GStreamer
// server), `cafe-stream worker` processes with the real detector and the tiny test models (the property under
// test is who serves which camera, not accuracy), the default session timeout (6 s). Sized for 2 shared cores:
// 6 cameras analysed at 1 frame/s.
//
// 1. `cameras add --file` puts 6 cameras on a 6-partition control topic; 3 workers join: every camera is served
//    by exactly one worker, two each (/healthz and the events' `worker` header agree).
// 2. One worker is killed with SIGKILL: its 2 cameras are analysed again elsewhere (the time from the kill to
//    their first frame elsewhere is measured, printed and bounded); the other 4 stay on their workers, in the
//    same stream (no stream.end, no new stream.start) and without a pause; the moved cameras' stream.start
//    names the lost worker, and a consumer (SpellTracker, as `subscribe` runs it) closes its open tracks.
// 3. A fourth worker joins: it takes one camera from each loaded worker (a hand-over named in stream.start).
// 4. A worker is frozen (SIGSTOP) past the session timeout, then continued (SIGCONT): its cameras run elsewhere
//    meanwhile, it stops them as soon as it runs again, rejoins the group, and every camera ends up served once.
// Throughout, from the events: no camera is served by two workers at once (each worker's spell on a camera,
// from its stream.start to its last observation, never overlaps another worker's on the same camera).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpellTracker } from '../src/api/spells.js';
import type { StreamStartEvent, TrackEndEvent } from '../src/types.js';
import { EventTap, startWorker, workerHealth, type WorkerHealth, type WorkerProc } from './helpers/cluster.js';
import { brokerAsync, KAFKA_BOOTSTRAP, uniqueTopic } from './helpers/kafka.js';
import { testModelsDir } from './helpers/models.js';
import { freePort, RtspTestServer } from './helpers/rtsp.js';
import { sharedPath } from './helpers/shared.js';

const CAMERAS = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6'];
const CLIPS = ['d0.mp4', 'd3.mp4', 'd12.mp4', 'd18.mp4', 'd0.mp4', 'd3.mp4'];
const SESSION_S = 6; // the worker's default
/**
 * Bounds for a 2-core machine that may be loaded by others (load 9-13 seen while writing this): the group's
 * decision is bounded tightly (session timeout + a rebalance), the first analysed frame loosely (an RTSP
 * connect under load took up to 6 s); the median figures are in bench/cluster-bench.ts and BENCHMARKS.md.
 */
const REASSIGN_BOUND_S = SESSION_S + 3;
const TAKEOVER_BOUND_S = 20;
/** a stayer analyses a frame a second; a restart (connect) would stop it longer than this */
const GAP_BOUND_S = 5;

describe('worker group over Kafka', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cluster-'));
  const camerasTopic = uniqueTopic('cams');
  const eventsTopic = uniqueTopic('events');
  const group = `test-group-${camerasTopic.slice(-8)}`;
  let rtsp: RtspTestServer;
  let tap: EventTap;
  const workers: WorkerProc[] = [];
  let workerArgs: string[] = [];

  beforeAll(async () => {
    await brokerAsync('start');
    const port = await freePort();
    rtsp = new RtspTestServer(port, Object.fromEntries(CAMERAS.map((c, i) => [c, sharedPath('data', 'videos', CLIPS[i]!)])));
    await rtsp.start();
    const yaml = ['streams:', ...CAMERAS.flatMap((c) => [`  - id: ${c}`, `    url: ${rtsp.url(c)}`, '    sampleFps: 1', '    stallSeconds: 4'])].join('\n');
    writeFileSync(join(dir, 'cameras.yaml'), `${yaml}\n`);
    execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'cameras', 'add', '--file', join(dir, 'cameras.yaml'), '--kafka', KAFKA_BOOTSTRAP, '--cameras-topic', camerasTopic, '--partitions', '6'], {
      timeout: 120_000,
    });
    tap = new EventTap(eventsTopic);
    await tap.start();
    workerArgs = ['--kafka', KAFKA_BOOTSTRAP, '--group', group, '--cameras-topic', camerasTopic, '--events-topic', eventsTopic, '--models', await testModelsDir(), '--no-jobs'];
  }, 300_000);

  afterAll(async () => {
    for (const w of workers) writeFileSync(join(dir, `${w.id}.log`), w.stderr());
    console.log(`cluster: worker logs in ${dir}`);
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
    await Promise.all(workers.map((w) => new Promise((r) => (w.child.exitCode !== null || w.child.signalCode !== null ? r(null) : w.child.once('exit', r)))));
    await tap?.stop();
    await rtsp?.kill();
  }, 120_000);

  const alive = (): WorkerProc[] => workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
  const healths = async (): Promise<Map<string, WorkerHealth>> => {
    const m = new Map<string, WorkerHealth>();
    for (const w of alive()) {
      const h = await workerHealth(w);
      if (h !== undefined) m.set(w.id, h);
    }
    return m;
  };
  /** camera → workers that run it now, by /healthz; once every camera is online somewhere. */
  const servedBy = async (): Promise<Map<string, string[]> | undefined> => {
    const by = new Map<string, string[]>(CAMERAS.map((c) => [c, []]));
    for (const [id, h] of await healths()) for (const c of h.worker?.cameras ?? []) if (c.state === 'online') by.get(c.id)?.push(id);
    return [...by.values()].every((ws) => ws.length >= 1) ? by : undefined;
  };
  /** camera → the workers whose observations of it (frame time after `since`) the events topic holds. */
  const observedBy = (since: number): Map<string, Set<string>> => {
    const m = new Map<string, Set<string>>(CAMERAS.map((c) => [c, new Set()]));
    for (const s of tap.seen) if (s.event.type === 'face.observation' && s.event.time > since) m.get(s.event.streamId)?.add(s.worker);
    return m;
  };

  it('serves every camera once, moves the cameras of a killed worker, and spreads them onto a new one', async () => {
    // ---- 1. three workers ----
    for (const id of ['w1', 'w2', 'w3']) workers.push(startWorker(id, await freePort(), workerArgs));
    let by: Map<string, string[]> | undefined;
    await waitFor(
      '6 cameras online, each on one of 3 workers',
      () => by !== undefined && [...by.values()].every((ws) => ws.length === 1) && new Set([...by.values()].flat()).size === 3,
      150_000,
      async () => (by = await servedBy()),
    );
    const perWorker = new Map<string, string[]>();
    for (const [c, ws] of by!) perWorker.set(ws[0]!, [...(perWorker.get(ws[0]!) ?? []), c]);
    console.log(`cluster: 3 workers, cameras per worker: ${[...perWorker].map(([w, cs]) => `${w}=${cs.join(',')}`).join(' ')}`);
    expect([...perWorker.values()].map((cs) => cs.length).sort()).toEqual([2, 2, 2]);
    // the events agree: observations of each camera come from the worker /healthz names
    const t1 = Date.now() / 1000;
    await waitFor('fresh observations of every camera', () => [...observedBy(t1).values()].every((s) => s.size >= 1), 60_000);
    for (const [c, ws] of observedBy(t1)) expect([...ws], c).toEqual(by!.get(c));

    // ---- 2. SIGKILL one worker ----
    const victim = workers.find((w) => w.id === 'w2')!;
    const orphans = perWorker.get('w2')!;
    const stayers = CAMERAS.filter((c) => !orphans.includes(c));
    const before = new Map(stayers.map((c) => [c, by!.get(c)![0]!]));
    const killedAt = Date.now();
    victim.child.kill('SIGKILL');
    const resumedAt = new Map<string, number>();
    // the group's decision: the orphans appear (connecting) in a survivor's /healthz
    const reassignedAt = new Map<string, number>();
    await waitFor(
      `cameras ${orphans.join(',')} resumed on the other workers`,
      () => {
        for (const s of tap.seen) {
          if (s.event.type !== 'face.observation' || !orphans.includes(s.event.streamId) || s.worker === 'w2' || s.event.time * 1000 <= killedAt) continue;
          if (!resumedAt.has(s.event.streamId)) resumedAt.set(s.event.streamId, s.event.time * 1000);
        }
        return orphans.every((c) => resumedAt.has(c));
      },
      90_000,
      async () => {
        for (const [id, h] of await healths()) for (const c of h.worker?.cameras ?? []) if (id !== 'w2' && orphans.includes(c.id) && !reassignedAt.has(c.id)) reassignedAt.set(c.id, Date.now());
      },
      250,
    );
    const takeover = Math.max(...[...resumedAt.values()].map((t) => t - killedAt)) / 1000;
    const reassigned = Math.max(...orphans.map((c) => Math.min(reassignedAt.get(c) ?? Infinity, resumedAt.get(c)!) - killedAt)) / 1000;
    await new Promise((r) => setTimeout(r, 5000)); // frames of the stayers after the rebalance
    const windowEnd = Date.now() / 1000;
    // the stayers' longest gap between analysed frames around the rebalance (1 s apart when nothing pauses)
    const gaps = stayers.map((c) => {
      const times = tap.seen.filter((s) => s.event.streamId === c && s.event.type === 'face.observation' && s.event.time > killedAt / 1000 - 5 && s.event.time < windowEnd).map((s) => s.event.time);
      const sorted = [...new Set(times)].sort((a, b) => a - b);
      return Math.max(0, ...sorted.slice(1).map((t, i) => t - sorted[i]!));
    });
    console.log(`cluster: SIGKILL of w2 → its cameras ${orphans.join(',')} reassigned after ${reassigned.toFixed(1)} s, analysed again on other workers after ${takeover.toFixed(1)} s (session timeout ${SESSION_S} s, load ${loadavg()[0]!.toFixed(1)}); longest gap between frames of the other 4: ${gaps.map((g) => g.toFixed(1)).join(', ')} s`);
    // the group can only notice a silent death when the session expires; after that one rebalance and an RTSP connect
    expect(reassigned).toBeGreaterThan(SESSION_S * 0.5);
    expect(reassigned).toBeLessThan(REASSIGN_BOUND_S);
    expect(takeover).toBeLessThan(TAKEOVER_BOUND_S);
    for (const g of gaps) expect(g).toBeLessThan(GAP_BOUND_S);
    await waitFor('6 cameras on the 2 survivors, each once', () => by !== undefined && [...by.values()].every((ws) => ws.length === 1), 60_000, async () => (by = await servedBy()));
    const survivors = new Set([...by!.values()].flat());
    expect(survivors).toEqual(new Set(['w1', 'w3']));
    // only the orphans moved: the other 4 kept their worker and their stream (no stream.end, no new stream.start)
    for (const c of stayers) {
      expect(by!.get(c), c).toEqual([before.get(c)]);
      const restarted = tap.seen.filter((s) => s.event.streamId === c && (s.event.type === 'stream.start' || s.event.type === 'stream.end') && s.readAt > killedAt);
      expect(restarted.map((s) => `${s.worker} ${s.event.type}`), c).toEqual([]);
    }
    // the orphans' new streams name the lost worker; a consumer closes the tracks it left open
    for (const c of orphans) {
      const start = tap.seen.find((s) => s.event.streamId === c && s.event.type === 'stream.start' && s.readAt > killedAt);
      expect((start?.event as StreamStartEvent | undefined)?.stream.replaces, c).toEqual({ worker: 'w2', reason: 'worker-lost' });
    }
    const spells = new SpellTracker();
    const closed: TrackEndEvent[] = tap.seen.flatMap((s) => spells.see(s.event, s.worker));
    const dangling = new Set(tap.seen.filter((s) => s.worker === 'w2' && s.event.type === 'track.start').map((s) => `${s.event.streamId}/${(s.event as { trackId: string }).trackId}`));
    for (const s of tap.seen) if (s.worker === 'w2' && s.event.type === 'track.end') dangling.delete(`${s.event.streamId}/${s.event.trackId}`);
    expect(closed.map((e) => `${e.streamId}/${e.trackId}`).sort()).toEqual([...dangling].sort());
    expect(closed.every((e) => e.reason === 'worker-lost')).toBe(true);

    // ---- 3. a fourth worker joins ----
    const joinedAt = Date.now();
    workers.push(startWorker('w4', await freePort(), workerArgs));
    await waitFor(
      'cameras spread over w1, w3, w4',
      () => by !== undefined && [...by.values()].every((ws) => ws.length === 1) && new Set([...by.values()].flat()).size === 3 && [...by.values()].flat().includes('w4'),
      150_000,
      async () => (by = await servedBy()),
    );
    console.log(`cluster: w4 joined → serving ${[...by!].filter(([, ws]) => ws[0] === 'w4').map(([c]) => c).join(',')} after ${((Date.now() - joinedAt) / 1000).toFixed(1)} s (incl. model load)`);
    const h4 = (await healths()).get('w4')!;
    expect(h4.worker?.cameras.length).toBe(2);

    // the cameras w4 took came from live workers: a hand-over, named in their stream.start
    const handed = tap.seen.filter((s) => s.worker === 'w4' && s.event.type === 'stream.start').map((s) => (s.event as StreamStartEvent).stream.replaces);
    expect(handed.length).toBeGreaterThanOrEqual(2);
    for (const r of handed) expect(r?.reason).toBe('handover');

    // ---- 4. a worker frozen past the session timeout ----
    await new Promise((r) => setTimeout(r, 3000));
    const frozen = workers.find((w) => w.id === 'w3')!;
    const itsCameras = [...by!].filter(([, ws]) => ws[0] === 'w3').map(([c]) => c);
    const stoppedAt = Date.now();
    frozen.child.kill('SIGSTOP');
    await waitFor(`w3's cameras ${itsCameras.join(',')} analysed elsewhere`, () => itsCameras.every((c) => tap.seen.some((s) => s.event.streamId === c && s.event.type === 'face.observation' && s.worker !== 'w3' && s.event.time * 1000 > stoppedAt)), 60_000);
    await new Promise((r) => setTimeout(r, 2000));
    const continuedAt = Date.now();
    frozen.child.kill('SIGCONT');
    console.log(`cluster: w3 frozen ${((continuedAt - stoppedAt) / 1000).toFixed(1)} s (session ${SESSION_S} s); its cameras ${itsCameras.join(',')} ran elsewhere meanwhile`);
    await waitFor(
      'w3 back in the group and every camera served once',
      () => by !== undefined && [...by.values()].every((ws) => ws.length === 1) && new Set([...by.values()].flat()).size === 3 && [...by.values()].flat().includes('w3'),
      120_000,
      async () => (by = await servedBy()),
    );
    const h3 = await workerHealth(frozen);
    expect((h3?.worker as { membership?: { member: boolean } } | undefined)?.membership?.member).toBe(true);
    const metrics = await (await fetch(`http://127.0.0.1:${frozen.httpPort}/metrics`)).text();
    expect(metrics).toContain(`cafe_worker_group_member{group="${group}"} 1`);
    expect(metrics).toMatch(new RegExp(`^cafe_worker_group_restarts_total\\{group="${group}"\\} \\d+$`, 'm'));
    // what w3 analysed after it was continued: nothing of the cameras others had taken, before it gave them up
    expect(frozen.stderr()).toMatch(/frozen past the session timeout/);

    // ---- no camera served by two workers at once ----
    await new Promise((r) => setTimeout(r, 3000));
    assertNoDoubleServing(tap);
  }, 500_000);
});

/** Polls `ok` (after `refresh`, if given) every `everyMs` until it holds. */
async function waitFor(what: string, ok: () => boolean, timeoutMs: number, refresh?: () => Promise<unknown>, everyMs = 500): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = await refresh?.();
    if (ok()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(seen instanceof Map ? [...seen] : seen)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * A worker's spell on a camera: its observations of the camera after one of its stream.start events (an
 * observation's frame may be a few ms older than the stream.start that precedes it in the stream, hence the
 * 0.5 s slack in assigning it). Spells of different workers on one camera must not overlap in frame time.
 */
function assertNoDoubleServing(tap: EventTap): void {
  const starts = new Map<string, number[]>(); // camera \0 worker → stream.start times
  for (const { worker, event } of tap.seen) {
    if (event.type !== 'stream.start') continue;
    const k = `${event.streamId}\u0000${worker}`;
    starts.set(k, [...(starts.get(k) ?? []), event.time].sort((a, b) => a - b));
  }
  const spells = new Map<string, { camera: string; worker: string; first: number; last: number }>();
  for (const { worker, event } of tap.seen) {
    if (event.type !== 'face.observation') continue;
    const k = `${event.streamId}\u0000${worker}`;
    const list = starts.get(k) ?? [];
    const i = list.filter((t) => t <= event.time + 0.5).length - 1;
    expect(i, `${event.streamId} observed by ${worker} with no stream.start before it`).toBeGreaterThanOrEqual(0);
    const sk = `${k}\u0000${i}`;
    const s = spells.get(sk) ?? { camera: event.streamId, worker, first: event.time, last: event.time };
    s.first = Math.min(s.first, event.time);
    s.last = Math.max(s.last, event.time);
    spells.set(sk, s);
  }
  for (const camera of CAMERAS) {
    const list = [...spells.values()].filter((s) => s.camera === camera).sort((a, b) => a.first - b.first);
    for (let i = 1; i < list.length; i++) {
      const [a, b] = [list[i - 1]!, list[i]!];
      if (a.worker === b.worker) continue;
      expect(a.last, `${camera}: ${a.worker} analysed a frame at ${a.last} after ${b.worker} began at ${b.first}`).toBeLessThan(b.first);
    }
  }
  // a spell per camera for the first assignment, then one per move: 2 orphans, 2 to the newcomer, the frozen worker's 2 and back
  expect(spells.size).toBeGreaterThanOrEqual(CAMERAS.length + 2 + 2 + 2);
}
