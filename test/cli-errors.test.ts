// `cafe-stream analyze` on bad inputs: one line naming the cause, the documented exit code, and whatever was
// written is valid JSONL ending in the stream's stream.end (reason error).
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit-codes.js';
import { parseJsonl, runCli, startCli } from './helpers/cli.js';
import { testModelsDir } from './helpers/models.js';
import { assertValidEvents } from './helpers/schema.js';
import { sharedPath } from './helpers/shared.js';
import { makeMidStreamTruncatedVideo, tempDir, truncateFile } from './helpers/videos.js';

const tmp = tempDir();
let models: string;

beforeAll(async () => {
  models = await testModelsDir();
});
afterAll(() => tmp.cleanup());

async function analyzeExpectingError(input: string, name: string, extra: string[] = []): Promise<{ code: number | null; line: string; events: Record<string, unknown>[] }> {
  const out = join(tmp.dir, `${name}.jsonl`);
  const r = await runCli(['analyze', input, '--out', out, '--models', models, '--device', 'cpu', '--quiet', ...extra]);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  // Exactly one line on stderr, and it is the error.
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^cafe-stream: error: \S/);
  expect(r.stdout).toBe('');
  const events = parseJsonl(readFileSync(out, 'utf8'));
  assertValidEvents(events);
  expect(events.length).toBeGreaterThan(0);
  expect(events[events.length - 1]).toMatchObject({ type: 'stream.end', reason: 'error' });
  return { code: r.code, line: lines[0]!, events };
}

describe('cafe-stream analyze: bad inputs', () => {
  it('a missing file', async () => {
    const missing = join(tmp.dir, 'nope.mp4');
    const r = await analyzeExpectingError(missing, 'missing');
    expect(r.code).toBe(EXIT.inputMissing);
    expect(r.line).toContain('no such file');
    expect(r.line).toContain(missing);
  });

  it('a text file named .mp4', async () => {
    const fake = join(tmp.dir, 'notes.mp4');
    writeFileSync(fake, 'this is not a video\n'.repeat(50));
    const r = await analyzeExpectingError(fake, 'text');
    expect(r.code).toBe(EXIT.notAVideo);
    expect(r.line).toContain('not a video');
  });

  it('a truncated video (head -c half of d0.mp4)', async () => {
    const half = truncateFile(sharedPath('data', 'videos', 'd0.mp4'), join(tmp.dir, 'd0-half.mp4'));
    const r = await analyzeExpectingError(half, 'half');
    expect(r.code).toBe(EXIT.decode);
    expect(r.line).toContain('truncated');
    expect(r.events[r.events.length - 1]!['error']).toContain('truncated');
  });

  it('a video truncated mid-stream: the timeline up to the damage, then stream.end error', async () => {
    const broken = await makeMidStreamTruncatedVideo(tmp.dir);
    const r = await analyzeExpectingError(broken, 'mid');
    expect(r.code).toBe(EXIT.decode);
    expect(r.line).toContain('truncated');
    const types = r.events.map((e) => e['type']);
    expect(types[0]).toBe('stream.start');
    expect(types.filter((t) => t === 'face.observation').length).toBeGreaterThan(10);
    expect(types.slice(-2)).toEqual(['track.end', 'stream.end']);
  });

  // Corrupt bytes with the manifest's checksum left as it was (caught by the checksum), and with the checksum
  // updated to match (caught by onnxruntime itself): both are "the model does not load".
  it.each([
    ['checksum kept', false],
    ['checksum updated', true],
  ])('a models folder with a corrupt .onnx (%s)', async (name, fixSha) => {
    const bad = join(tmp.dir, `bad-models-${fixSha}`);
    mkdirSync(bad);
    for (const f of readdirSync(models)) copyFileSync(join(models, f), join(bad, f));
    const head = readdirSync(bad).find((f) => f.startsWith('head') && f.endsWith('.onnx'))!;
    const garbage = Buffer.from('garbage, not a protobuf');
    writeFileSync(join(bad, head), garbage);
    if (fixSha) {
      const manifestPath = join(bad, `${head}.json`);
      const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { sha256: string };
      manifest.sha256 = createHash('sha256').update(garbage).digest('hex');
      writeFileSync(manifestPath, JSON.stringify(manifest));
    }
    const out = join(tmp.dir, `badmodel-${fixSha}.jsonl`);
    const r = await runCli(['analyze', sharedPath('data', 'videos', 'd0.mp4'), '--out', out, '--models', bad, '--device', 'cpu', '--quiet']);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^cafe-stream: error: /);
    expect(lines[0]).toContain(head);
    expect(r.code, name).toBe(EXIT.model);
    const events = parseJsonl(readFileSync(out, 'utf8'));
    assertValidEvents(events);
    expect(events.map((e) => e['type'])).toEqual(['stream.end']);
  });

  it('SIGINT mid-run: exit 130, whole lines only, every stream and track closed (reason stopped)', async () => {
    const out = join(tmp.dir, 'interrupted.jsonl');
    const run = startCli(['analyze', sharedPath('data', 'videos', 'd18.mp4'), '--out', out, '--models', models, '--device', 'cpu', '--quiet']);
    // Interrupt once the timeline is under way.
    for (let i = 0; i < 600 && !(existsSync(out) && readFileSync(out, 'utf8').split('\n').length > 6); i++) await sleep(100);
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code, r.stderr).toBe(EXIT.interrupted);
    const events = parseJsonl(readFileSync(out, 'utf8'));
    assertValidEvents(events);
    expect(events.at(-1)).toMatchObject({ type: 'stream.end', reason: 'stopped' });
    expect(events.filter((e) => e['type'] === 'track.start').length).toBe(events.filter((e) => e['type'] === 'track.end').length);
  });

  it('a bad option is a usage error', async () => {
    const r = await runCli(['analyze', 'x.mp4', '--batch-size', 'zero']);
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr.split('\n')[0]).toMatch(/^cafe-stream: error: .*--batch-size/);
  });

  it('--help works on the program and on analyze', async () => {
    const top = await runCli(['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toContain('analyze');
    const sub = await runCli(['analyze', '--help']);
    expect(sub.code).toBe(0);
    for (const flag of ['--out', '--sample-fps', '--device', '--models', '--batch-size', '--batch-ms', '--quiet']) expect(sub.stdout).toContain(flag);
  });
});
