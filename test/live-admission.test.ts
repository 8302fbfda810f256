// Admission control for live streams: frames of all cameras share a bound on frames inside the pipeline; the
// excess is dropped at the source (newest frame wins) and counted in /metrics, never queued. The gate's rules
// as pure logic, then three real RTSP cameras (the local GStreamer server) through a LiveRunner whose detector
// is the real one, slowed down so that the pipeline is certainly slower than the cameras on any machine.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseStreamConfig } from '../src/config.js';
import { LiveMetrics } from '../src/http/metrics.js';
import { LiveHttpServer } from '../src/http/server.js';
import { AdmissionGate } from '../src/ingest/admission.js';
import { LiveRunner } from '../src/live/live-runner.js';
import { loadExpressionModel, type ExpressionModel } from '../src/model/expression-model.js';
import { loadFaceDetector, type FaceDetector } from '../src/model/face-detector.js';
import type { Frame } from '../src/types.js';
import { testModelsDir } from './helpers/models.js';
import { freePort, RtspTestServer, waitFor } from './helpers/rtsp.js';
import { sharedPath } from './helpers/shared.js';
import { memorySink } from './helpers/sinks.js';

describe('AdmissionGate', () => {
  it('hands out at most `capacity` slots and gives a freed slot to the longest-waiting source', () => {
    const gate = new AdmissionGate(2);
    expect([gate.tryEnter(), gate.tryEnter(), gate.tryEnter()]).toEqual([true, true, false]);
    const order: string[] = [];
    const waiter = (name: string) => () => {
      order.push(name);
      return gate.tryEnter();
    };
    const a = waiter('a');
    const b = waiter('b');
    gate.wait(a);
    gate.wait(b);
    gate.wait(a); // asking again keeps a's place
    gate.leave();
    expect(order).toEqual(['a']);
    expect(gate.free()).toBe(0);
    gate.leave();
    expect(order).toEqual(['a', 'b']);
    gate.leave();
    expect(gate.free()).toBe(1); // nobody waiting: the slot stays free
    expect(() => new AdmissionGate(0)).toThrow(/capacity/);
  });
});

describe('live admission with real cameras', () => {
  let rtsp: RtspTestServer;
  let detector: FaceDetector;
  let model: ExpressionModel;
  beforeAll(async () => {
    rtsp = new RtspTestServer(await freePort(), { cam0: sharedPath('data', 'videos', 'd0.mp4'), cam1: sharedPath('data', 'videos', 'd3.mp4'), cam2: sharedPath('data', 'videos', 'd18.mp4') });
    [, detector, model] = await Promise.all([rtsp.start(), loadFaceDetector(), loadExpressionModel({ modelsDir: await testModelsDir(), device: 'cpu' })]);
  }, 90_000);
  afterAll(async () => {
    detector?.close();
    await model?.close();
    await rtsp?.kill();
  });

  it('three cameras, a pipeline slower than them: at most 2 frames inside at once, skipped frames counted in /metrics', async () => {
    let inside = 0;
    let mostInside = 0;
    // the real detector plus 150 ms a call: slower than 3 × 25–30 fps on any machine
    const slow = {
      name: detector.name,
      detect: async (f: Frame) => {
        mostInside = Math.max(mostInside, ++inside);
        try {
          await new Promise((r) => setTimeout(r, 150));
          return await detector.detect(f);
        } finally {
          inside--;
        }
      },
    };
    const metrics = new LiveMetrics({ defaultMetrics: false });
    const log = pino({ level: 'silent' });
    const runner = new LiveRunner({ detector: slow, model, sinks: [memorySink()], metrics, log, maxFramesInFlight: 2 });
    const http = new LiveHttpServer({ metrics, streams: runner, log });
    const addr = await http.listen('127.0.0.1', 0);
    try {
      for (const id of ['cam0', 'cam1', 'cam2']) runner.start(parseStreamConfig({ id, url: rtsp.url(id) }));
      await waitFor('every camera analysed and skipping', () => runner.list().every((s) => s.analysed >= 3 && s.skipped >= 10), 45_000, 200);
      const views = new Map(runner.list().map((s) => [s.id, s]));
      const text = await (await fetch(`http://127.0.0.1:${addr.port}/metrics`)).text();
      const value = (name: string): number => Number(text.match(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm'))?.[1] ?? NaN);
      for (const id of ['cam0', 'cam1', 'cam2']) {
        const skipped = value(`cafe_stream_frames_skipped_total{stream="${id}"}`);
        expect(skipped, id).toBeGreaterThanOrEqual(10);
        // /metrics reads the source's own count at scrape time (it can only have grown since list())
        expect(skipped, id).toBeGreaterThanOrEqual(views.get(id)!.skipped);
      }
      expect(mostInside).toBeLessThanOrEqual(2);
      expect(mostInside).toBeGreaterThanOrEqual(1);
    } finally {
      await http.close();
      await runner.close();
    }
  }, 90_000);
});
