// The CPU model stage on model threads (model-threads.ts), with the shipped models on real face crops: the same
// readings as the model on the calling thread, batches in flight at once, load errors as loadExpressionModel's,
// a clean close, and a process that exits mid-batch with its own code (the exit guard).
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelError, isCafeStreamError } from '../src/errors.js';
import { loadImageFrame } from '../src/ingest/image.js';
import { loadExpressionModel, type ExpressionModel } from '../src/model/expression-model.js';
import { loadFaceDetector } from '../src/model/face-detector.js';
import { ThreadedExpressionModel, loadExpressionModelThreads } from '../src/model/model-threads.js';
import { cropFace } from '../src/pipeline/crop.js';
import type { FaceCrop } from '../src/types.js';
import { realModelsDir } from './helpers/models.js';
import { sharedPath } from './helpers/shared.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const threads = (): number => readdirSync('/proc/self/task').length;
let crops: FaceCrop[];
let local: ExpressionModel;
const tmp = mkdtempSync(join(tmpdir(), 'cafe-model-threads-'));

beforeAll(async () => {
  local = await loadExpressionModel({ modelsDir: realModelsDir(), device: 'cpu' });
  const detector = await loadFaceDetector();
  const frame = await loadImageFrame(sharedPath('data', 'images', 'faces.jpg'), 'faces');
  const faces = await detector.detect(frame);
  detector.close();
  expect(faces).toHaveLength(6);
  crops = await Promise.all(
    faces.map(async (d, i) => ({ streamId: 'faces', frameId: 0, pts: 0, trackId: `t${i}`, box: d.box, size: local.cropSize, rgb: await cropFace(frame, d.box, local.cropSize, 1.3) })),
  );
});
afterAll(async () => {
  await local?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('model threads', () => {
  it('read real crops as the model on this thread does, two batches at once, and leave no thread behind', async () => {
    const before = threads();
    const logs: string[] = [];
    const model = await loadExpressionModelThreads({ modelsDir: realModelsDir(), device: 'cpu', modelThreads: 2, log: (l) => logs.push(l) });
    expect(logs).toEqual([expect.stringMatching(/ on cpu \(2 model threads\)$/)]);
    expect([model.cropSize, model.provider, model.precision]).toEqual([local.cropSize, local.provider, local.precision]);

    expect(model).toBeInstanceOf(ThreadedExpressionModel);
    // the second thread loads beside the first batches; both read once it has
    expect(await (model as ThreadedExpressionModel).whenAllLoaded()).toBe(2);
    const expected = await local.infer(crops);
    // two batches in flight: one on each thread
    const [a, b] = await Promise.all([model.infer(crops), model.infer([...crops].reverse())]);
    for (const [got, want] of [
      [a!, expected],
      [b!.slice().reverse(), expected],
    ] as const) {
      expect(got).toHaveLength(crops.length);
      got.forEach((p, i) => {
        expect(p).toHaveLength(7);
        for (let k = 0; k < 7; k++) expect(Math.abs(p[k]! - want[i]![k]!)).toBeLessThan(1e-4);
      });
    }
    expect(await model.infer([])).toEqual([]);
    // batches of other sizes, one after another: the pixel buffers the threads hand back are reused, larger than
    // the batch after a big one, and every batch still reads its own crops
    for (const n of [6, 2, 5, 1, 6, 3]) {
      const some = crops.slice(crops.length - n).reverse();
      const got = await model.infer(some);
      const want = await local.infer(some);
      got.forEach((p, i) => {
        for (let k = 0; k < 7; k++) expect(Math.abs(p[k]! - want[i]![k]!)).toBeLessThan(1e-4);
      });
    }

    await model.close();
    await expect(model.infer(crops)).rejects.toMatchObject({ code: 'CS_ERR_INFERENCE' });
    for (let i = 0; i < 50 && threads() > before; i++) await new Promise((r) => setTimeout(r, 100));
    expect(threads()).toBeLessThanOrEqual(before);
  });

  it('modelThreads 0 reads on the calling thread, 3 on three threads; other counts are a ConfigError', async () => {
    const expected = await local.infer(crops);
    const here = await loadExpressionModelThreads({ modelsDir: realModelsDir(), device: 'cpu', modelThreads: 0 });
    expect(here).not.toBeInstanceOf(ThreadedExpressionModel);
    // the same session options as `local`: the same numbers
    expect(await here.infer(crops)).toEqual(expected);
    await here.close();

    const three = await loadExpressionModelThreads({ modelsDir: realModelsDir(), device: 'cpu', modelThreads: 3 });
    expect(await (three as ThreadedExpressionModel).whenAllLoaded()).toBe(3);
    const results = await Promise.all([0, 1, 2, 3].map(() => three.infer(crops)));
    for (const got of results) got.forEach((p, i) => expect(Math.max(...p.map((v, k) => Math.abs(v - expected[i]![k]!)))).toBeLessThan(1e-4));
    await three.close();

    for (const bad of [-1, 1.5, 65, '2' as unknown as number]) {
      const err = await loadExpressionModelThreads({ modelsDir: realModelsDir(), device: 'cpu', modelThreads: bad }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'CS_ERR_CONFIG', message: expect.stringMatching(/modelThreads must be an integer from 0 to 64/) });
    }
  });

  it('a models folder that does not load fails as loadExpressionModel fails, naming the cause', async () => {
    const empty = mkdtempSync(join(tmp, 'empty-'));
    const direct = await loadExpressionModel({ modelsDir: empty, device: 'cpu' }).catch((e: unknown) => e);
    const threaded = await loadExpressionModelThreads({ modelsDir: empty, device: 'cpu' }).catch((e: unknown) => e);
    expect(isCafeStreamError(direct)).toBe(true);
    expect(threaded).toBeInstanceOf(direct instanceof ModelError ? ModelError : Error);
    expect((threaded as { code: string }).code).toBe((direct as { code: string }).code);
    expect((threaded as Error).message).toBe((direct as Error).message);
  });

  it('process.exit during batches, three times: the process exits with its own code, never SIGABRT', async () => {
    const script = join(tmp, 'exit-mid-batch.mts');
    writeFileSync(
      script,
      `import { loadExpressionModelThreads } from ${JSON.stringify(join(repoRoot, 'src/model/model-threads.ts'))};
const model = await loadExpressionModelThreads({ modelsDir: ${JSON.stringify(realModelsDir())}, device: 'cpu' });
const crop = { streamId: 's', frameId: 0, pts: 0, trackId: 't1', box: { x: 0, y: 0, width: 1, height: 1 }, size: model.cropSize, rgb: Buffer.alloc(model.cropSize * model.cropSize * 3, 90) };
const batch = Array.from({ length: 16 }, () => crop);
for (let i = 0; i < 4; i++) void model.infer(batch).catch(() => undefined);
setTimeout(() => process.exit(7), 60);
`,
    );
    for (let run = 0; run < 3; run++) {
      const r = await new Promise<{ code: number | null; signal: string | null }>((res) =>
        execFile(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, timeout: 60_000 }, (err) =>
          res({ code: err ? ((err as { code?: number }).code ?? null) : 0, signal: err ? ((err as { signal?: string }).signal ?? null) : null }),
        ),
      );
      expect(r).toEqual({ code: 7, signal: null });
    }
  });
});
