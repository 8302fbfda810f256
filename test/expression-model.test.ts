// The model stage on the tiny fixture models in onnxruntime-node: batched runs, batch-size independence,
// provider choice, and a model that does not load.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelError } from '../src/errors.js';
import { loadExpressionModel, type ExpressionModel } from '../src/model/expression-model.js';
import { missingGpuDevice } from '../src/model/onnx-runtime.js';
import { sha256File } from '../src/model/manifest.js';
import { EXPRESSIONS, type FaceCrop } from '../src/types.js';
import { tinyModelsCopy, tinyModelsDir } from './fixtures/tiny-models.js';

let model: ExpressionModel;
const logs: string[] = [];

beforeAll(async () => {
  model = await loadExpressionModel({ modelsDir: await tinyModelsDir(), device: 'auto', threads: 1, log: (l) => logs.push(l) });
});
afterAll(() => model?.close());

/** Distinct, deterministic crops: a different gradient per index. */
function crops(n: number, size: number): FaceCrop[] {
  return Array.from({ length: n }, (_, i) => {
    const rgb = Buffer.alloc(size * size * 3);
    for (let p = 0; p < rgb.length; p++) rgb[p] = (p * (i + 3) * 7 + i * 40) % 256;
    return { streamId: 's', frameId: i, pts: i / 25, trackId: `t${i % 3}`, box: { x: 0, y: 0, width: size, height: size }, size, rgb };
  });
}

describe('loadExpressionModel (tiny models)', () => {
  it('states its classes, the crop size it wants, and the provider it runs on', () => {
    expect(model.classes).toEqual(EXPRESSIONS);
    expect(model.cropSize).toBe(32); // max(encoder 32×32, head 24×24)
    expect(['cpu', 'cuda', 'webgpu']).toContain(model.provider);
  });

  it('auto picks a provider that works and logs one line saying which (cpu here when no GPU works)', () => {
    expect(logs).toHaveLength(1);
    expect(logs[0]).toContain(`on ${model.provider}`);
    expect(logs[0]!.split('\n')).toHaveLength(1);
    if (model.provider === 'cpu') expect(logs[0]).toMatch(/not available: webgpu: .*cuda: /);
  });

  it('returns one probability vector per crop, each summing to 1', async () => {
    const out = await model.infer(crops(9, model.cropSize));
    expect(out).toHaveLength(9);
    for (const p of out) {
      expect(p).toBeInstanceOf(Float32Array);
      expect(p).toHaveLength(EXPRESSIONS.length);
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      for (const v of p) expect(v).toBeGreaterThanOrEqual(0);
    }
    // different crops, different readings: the outputs depend on the input
    expect(Array.from(out[0]!)).not.toEqual(Array.from(out[1]!));
  });

  it('gives each crop the same result alone as in a batch', async () => {
    const batch = crops(7, model.cropSize);
    const together = await model.infer(batch);
    for (const i of [0, 3, 6]) {
      const [alone] = await model.infer([batch[i]!]);
      Array.from(alone!).forEach((v, k) => expect(v).toBeCloseTo(together[i]![k]!, 5));
    }
  });

  it('serves overlapping calls without mixing their buffers', async () => {
    const a = crops(5, model.cropSize);
    const b = crops(6, model.cropSize).slice(1);
    const [ra, rb] = await Promise.all([model.infer(a), model.infer(b)]);
    const [ra1, rb0] = [await model.infer([a[1]!]), await model.infer([b[0]!])];
    Array.from(ra1[0]!).forEach((v, k) => expect(v).toBeCloseTo(ra[1]![k]!, 5));
    Array.from(rb0[0]!).forEach((v, k) => expect(v).toBeCloseTo(rb[0]![k]!, 5));
  });

  it('accepts crops of another size (resized per manifest) and an empty batch', async () => {
    const out = await model.infer(crops(2, 50));
    expect(out).toHaveLength(2);
    expect(await model.infer([])).toEqual([]);
  });

  it('runs on cpu when asked', async () => {
    const cpu = await loadExpressionModel({ modelsDir: await tinyModelsDir(), device: 'cpu' });
    expect(cpu.provider).toBe('cpu');
    const [p] = await cpu.infer(crops(1, cpu.cropSize));
    expect(p!.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    await cpu.close();
  });

  it('a model file that is not ONNX: CS_ERR_MODEL_LOAD naming the file and the cause, in one line', async () => {
    const dir = await tinyModelsCopy();
    const encoder = join(dir, 'encoder-tiny.onnx');
    writeFileSync(encoder, 'not an onnx model');
    // keep the manifests consistent so the failure is the load itself, not the checksum
    const sha = await sha256File(encoder);
    for (const [file, key] of [
      ['encoder-tiny.onnx.json', null],
      ['head-tiny.onnx.json', 'encoder'],
    ] as const) {
      const path = join(dir, file);
      const m = JSON.parse(readFileSync(path, 'utf8')) as Record<string, any>;
      if (key) m[key]['sha256'] = sha;
      else m['sha256'] = sha;
      writeFileSync(path, JSON.stringify(m));
    }
    const err = await loadExpressionModel({ modelsDir: dir, device: 'cpu' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ModelError);
    const e = err as ModelError;
    expect(e.code).toBe('CS_ERR_MODEL_LOAD');
    expect(e.modelPath).toBe(encoder);
    expect(e.message).toContain(encoder);
    expect(e.message.split('\n')).toHaveLength(1);
    rmSync(dir, { recursive: true });
  });
});

describe('missingGpuDevice', () => {
  it('skips GPU providers under auto when no GPU device node exists, and never skips cpu', () => {
    const dev = mkdtempSync(join(tmpdir(), 'cafe-dev-'));
    expect(missingGpuDevice('cpu', dev)).toBeUndefined();
    expect(missingGpuDevice('webgpu', dev)).toMatch(/no GPU device/);
    expect(missingGpuDevice('cuda', dev)).toMatch(/no NVIDIA device/);
    mkdirSync(join(dev, 'dri'));
    writeFileSync(join(dev, 'dri', 'renderD128'), '');
    expect(missingGpuDevice('webgpu', dev)).toBeUndefined();
    expect(missingGpuDevice('cuda', dev)).toMatch(/no NVIDIA device/);
    writeFileSync(join(dev, 'nvidiactl'), '');
    expect(missingGpuDevice('cuda', dev)).toBeUndefined();
  });
});
