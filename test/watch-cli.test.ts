// `cafe-stream watch` as a user runs it, as a separate process: one looping RTSP camera (the local GStreamer
// server), the real detector and ONNX models, JSONL on stdout. The detector flags reach the live detector
// (--detector short --tile: the log names it), events are valid and carry the camera's face, and SIGTERM ends
// it with exit 0.
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FaceObservationEvent, TimelineEvent } from '../src/types.js';
import { testModelsDir } from './helpers/models.js';
import { assertValidEvents } from './helpers/schema.js';
import { freePort, RtspTestServer, waitFor } from './helpers/rtsp.js';
import { sharedPath } from './helpers/shared.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

describe('cafe-stream watch', () => {
  let rtsp: RtspTestServer;
  let port = 0;
  beforeAll(async () => {
    port = await freePort();
    rtsp = new RtspTestServer(port, { cam: sharedPath('data', 'videos', 'd0.mp4') });
    await rtsp.start();
  }, 60_000);
  afterAll(async () => {
    await rtsp?.kill();
  });

  it('--detector short --tile --json: the tiling short-range detector reads the camera; events on stdout; SIGTERM exits 0', async () => {
    const child = spawn(
      process.execPath,
      ['bin/cafe-stream.js', 'watch', `rtsp://127.0.0.1:${port}/cam`, '--id', 'door', '--sample-fps', '4', '--models', await testModelsDir(), '--detector', 'short', '--tile', '--json'],
      { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    const events = (): TimelineEvent[] =>
      stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as TimelineEvent);
    try {
      await waitFor('five observations from watch', () => events().filter((e) => e.type === 'face.observation').length >= 5, 60_000);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/mediapipe-short@640\+tiles/);
    const all = events();
    assertValidEvents(all);
    const obs = all.filter((e): e is FaceObservationEvent => e.type === 'face.observation');
    expect(new Set(obs.map((o) => o.streamId))).toEqual(new Set(['door']));
    // d0's one face, large in a 512-px frame
    for (const o of obs) expect(o.box.width).toBeGreaterThan(100);
    expect(all.some((e) => e.type === 'stream.start' || e.type === 'stream.online')).toBe(true);
  }, 120_000);
});
