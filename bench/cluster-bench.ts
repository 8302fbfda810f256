// Scale bench for the worker group (docs/cluster.md): N looping RTSP cameras (the local GStreamer server), W
// `cafe-stream worker` processes on one machine and the local broker. Prints cameras served per worker and
// the time a rebalance takes: a worker SIGKILLed (the group waits for its session timeout), `--kills` times
// (a fresh worker replaces the dead one between kills; the median is printed), a worker joining (model
// loading included), a worker leaving cleanly (SIGTERM: it leaves the group at once). "Reassigned" = every
// moved camera listed by a survivor's /healthz (the group's decision); "resumed" = its first analysed frame
// on its new worker, read back from the events topic; "stayers" = the cameras that did not move: whether they
// kept their worker and their longest gap between analysed frames around the kill (1 s at 1 fps: no pause).
//
//   npx tsx bench/cluster-bench.ts [--cameras 6] [--workers 3] [--sample-fps 1] [--session-timeout 6] [--kills 3] [--models dir]
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { newKafka } from '../src/kafka/client.js';
import { ensureCamerasTopic, putCamera } from '../src/kafka/cameras.js';
import { parseStreamConfig } from '../src/config.js';
import { EventTap, startWorker, workerHealth, type WorkerProc } from '../test/helpers/cluster.js';
import { KAFKA_BOOTSTRAP, uniqueTopic } from '../test/helpers/kafka.js';
import { freePort, RtspTestServer } from '../test/helpers/rtsp.js';
import { sharedPath } from '../test/helpers/shared.js';

const { values: a } = parseArgs({
  options: {
    cameras: { type: 'string', default: '6' },
    workers: { type: 'string', default: '3' },
    'sample-fps': { type: 'string', default: '1' },
    'session-timeout': { type: 'string', default: '6' },
    kills: { type: 'string', default: '3' },
    models: { type: 'string', default: '.cache/tiny-models' },
  },
});
const N = Number(a.cameras);
const W = Number(a.workers);
const clips = ['d0.mp4', 'd3.mp4', 'd12.mp4', 'd18.mp4'];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  execFileSync('bash', ['scripts/kafka.sh', 'start'], { stdio: 'inherit' });
  const cams = Array.from({ length: N }, (_, i) => `cam${i + 1}`);
  const rtsp = new RtspTestServer(await freePort(), Object.fromEntries(cams.map((c, i) => [c, sharedPath('data', 'videos', clips[i % clips.length]!)])));
  await rtsp.start();
  const camerasTopic = uniqueTopic('bench-cams');
  const eventsTopic = uniqueTopic('bench-events');
  const kafka = newKafka({ brokers: [KAFKA_BOOTSTRAP], clientId: 'cluster-bench' });
  await ensureCamerasTopic(kafka, camerasTopic, Math.max(N, W + 1));
  for (const c of cams) await putCamera(kafka, camerasTopic, parseStreamConfig({ id: c, url: rtsp.url(c), sampleFps: Number(a['sample-fps']), stallSeconds: 4 }));
  const tap = new EventTap(eventsTopic);
  await tap.start();
  const args = ['--kafka', KAFKA_BOOTSTRAP, '--group', `bench-${camerasTopic.slice(-8)}`, '--cameras-topic', camerasTopic, '--events-topic', eventsTopic, '--models', a.models!, '--session-timeout', a['session-timeout']!, '--no-jobs'];
  const workers: WorkerProc[] = [];
  const alive = (): WorkerProc[] => workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);

  /** camera → workers running it online, once every camera is online exactly once. */
  const assignment = async (): Promise<Map<string, string> | undefined> => {
    const by = new Map<string, string[]>();
    for (const w of alive()) for (const c of (await workerHealth(w))?.worker?.cameras ?? []) if (c.state === 'online') by.set(c.id, [...(by.get(c.id) ?? []), w.id]);
    if (cams.some((c) => by.get(c)?.length !== 1)) return undefined;
    return new Map(cams.map((c) => [c, by.get(c)![0]!]));
  };
  const until = async <T>(what: string, f: () => Promise<T | undefined>, ms = 300_000): Promise<T> => {
    const end = Date.now() + ms;
    for (;;) {
      const v = await f();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`timed out: ${what}`);
      await sleep(250);
    }
  };
  /** ms from `t0` until every camera in `moved` has an analysed frame (time > t0) from a worker other than `from`. */
  const resumed = async (moved: string[], from: string, t0: number): Promise<number> =>
    until(`resume of ${moved.join(',')}`, async () => {
      const first = new Map<string, number>();
      for (const s of tap.seen) {
        if (s.event.type !== 'face.observation' || s.worker === from || !moved.includes(s.event.streamId) || s.event.time * 1000 <= t0) continue;
        first.set(s.event.streamId, Math.min(first.get(s.event.streamId) ?? Infinity, s.event.time * 1000));
      }
      return moved.every((c) => first.has(c)) ? Math.max(...first.values()) - t0 : undefined;
    });
  const perWorker = (m: Map<string, string>): string => {
    const counts = new Map<string, number>();
    for (const w of m.values()) counts.set(w, (counts.get(w) ?? 0) + 1);
    return [...counts].sort().map(([w, n]) => `${w}:${n}`).join(' ');
  };
  const rows: [string, string][] = [];

  const t0 = Date.now();
  for (let i = 1; i <= W; i++) workers.push(startWorker(`w${i}`, await freePort(), args));
  let m = await until('all cameras served', assignment);
  rows.push([`${N} cameras on ${W} workers (start, model load included)`, `${((Date.now() - t0) / 1000).toFixed(1)} s; cameras per worker ${perWorker(m)}`]);
  await sleep(5000);

  const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const reassignedS: number[] = [];
  const resumedS: number[] = [];
  const loads: number[] = [];
  let t = 0;
  for (let k = 1; k <= Number(a.kills); k++) {
    const victim = alive()[0]!;
    const moved = cams.filter((c) => m.get(c) === victim.id);
    const stayers = new Map(cams.filter((c) => !moved.includes(c)).map((c) => [c, m.get(c)!]));
    loads.push(loadavg()[0]!);
    t = Date.now();
    victim.child.kill('SIGKILL');
    const seen = new Map<string, number>();
    const reassigned = until(`reassignment of ${moved.join(',')}`, async () => {
      for (const w of alive()) for (const c of (await workerHealth(w))?.worker?.cameras ?? []) if (moved.includes(c.id) && !seen.has(c.id)) seen.set(c.id, Date.now());
      return moved.every((c) => seen.has(c)) ? Math.max(...seen.values()) - t : undefined;
    });
    const [rs, rm] = await Promise.all([reassigned, resumed(moved, victim.id, t)]);
    await sleep(5000);
    const gaps = [...stayers.keys()].map((c) => {
      const times = [...new Set(tap.seen.filter((s) => s.event.streamId === c && s.event.type === 'face.observation' && s.event.time * 1000 > t - 5000).map((s) => s.event.time))].sort((x, y) => x - y);
      return Math.max(0, ...times.slice(1).map((x, i) => x - times[i]!));
    });
    m = await until('served again', assignment);
    const kept = [...stayers].filter(([c, w]) => m.get(c) === w).length;
    // the group's own part of it: rebalance noticed → assignment, as each survivor measured it
    const joins = (await Promise.all(alive().map((w) => workerHealth(w)))).map((h) => (h?.worker as { lastRebalanceSeconds?: number } | undefined)?.lastRebalanceSeconds ?? 0);
    reassignedS.push(Math.min(rs, rm) / 1000);
    resumedS.push(rm / 1000);
    rows.push([`kill ${k}: SIGKILL of ${victim.id} (${moved.length} cameras), load ${loads.at(-1)!.toFixed(1)}`, `reassigned ${(Math.min(rs, rm) / 1000).toFixed(1)} s, resumed ${(rm / 1000).toFixed(1)} s; join ${Math.max(...joins).toFixed(2)} s; stayers kept their worker ${kept}/${stayers.size}, longest gap ${Math.max(...gaps).toFixed(1)} s`]);
    if (k < Number(a.kills)) {
      // a fresh worker in place of the dead one, so every kill starts from W workers
      const fresh = startWorker(`w${workers.length + 1}`, await freePort(), args);
      workers.push(fresh);
      m = await until('replacement serving', async () => {
        const x = await assignment();
        return x !== undefined && [...x.values()].includes(fresh.id) ? x : undefined;
      });
      await sleep(5000);
    }
  }
  rows.push([`SIGKILL, median of ${resumedS.length} (session timeout ${a['session-timeout']} s, load ${median(loads).toFixed(1)})`, `reassigned ${median(reassignedS).toFixed(1)} s, resumed ${median(resumedS).toFixed(1)} s (all: ${resumedS.map((x) => x.toFixed(1)).join(', ')} s)`]);
  rows.push([`  then`, `cameras per worker ${perWorker(m)}`]);
  await sleep(5000);

  t = Date.now();
  const joiner = startWorker(`w${workers.length + 1}`, await freePort(), args);
  workers.push(joiner);
  m = await until('joiner serving', async () => {
    const x = await assignment();
    return x !== undefined && [...x.values()].includes(joiner.id) ? x : undefined;
  });
  rows.push([`${joiner.id} joins`, `serving after ${((Date.now() - t) / 1000).toFixed(1)} s (model load included); cameras per worker ${perWorker(m)}`]);
  await sleep(5000);

  const leaver = alive()[0]!;
  const leaving = cams.filter((c) => m.get(c) === leaver.id);
  t = Date.now();
  leaver.child.kill('SIGTERM');
  rows.push([`SIGTERM of ${leaver.id} (${leaving.length} cameras: leaves the group)`, `resumed on others after ${((await resumed(leaving, leaver.id, t)) / 1000).toFixed(1)} s`]);
  m = await until('served again', assignment);
  rows.push([`  then`, `cameras per worker ${perWorker(m)}`]);

  console.log(`\ncluster bench: ${N} cameras at ${a['sample-fps']} fps, models ${a.models}, load average ${loadavg()[0]!.toFixed(1)}`);
  for (const [k, v] of rows) console.log(`  ${k.padEnd(58)} ${v}`);
  for (const w of alive()) w.child.kill('SIGTERM');
  await sleep(3000);
  await tap.stop();
  await rtsp.kill();
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
