// node dist/bench/gpu-model-stage.js [--models dir] [--providers cpu,webgpu,cuda] [--batches 1,16,64,256]
//                                    [--seconds 1.5] [--parity-crops 64] [--json]
//
// The model stage (encoder + head, src/model/expression-model.ts) alone, per execution provider, on the models in
// --models (default models/): crops/s at each batch size (median time of timed runs after two warm-up runs,
// which also pay for a GPU provider's per-shape kernel/shader compilation), and each non-cpu provider's
// max |Δp| against cpu on the same crops (probabilities, all classes), with how often the top class agrees.
// A provider that does not load is reported in one line and skipped. Crops are deterministic pseudo-random
// images at the model's crop size: speed does not depend on content, and parity compares like with like.
// Written for scripts/device/gpu-check.sh (a lent GPU machine), runs anywhere (cpu only without a GPU).
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadExpressionModel, type ExpressionModel } from '../src/model/expression-model.js';
import { DEVICES, type Provider } from '../src/model/onnx-runtime.js';
import type { FaceCrop } from '../src/types.js';

const { values } = parseArgs({
  options: {
    models: { type: 'string', default: resolve('models') },
    providers: { type: 'string', default: 'cpu,webgpu,cuda' },
    batches: { type: 'string', default: '1,16,64,256' },
    seconds: { type: 'string', default: '1.5' },
    'parity-crops': { type: 'string', default: '64' },
    json: { type: 'boolean', default: false },
  },
});
const providers = values.providers.split(',').map((p) => p.trim()) as Provider[];
for (const p of providers) {
  if (p === ('auto' as string) || !(DEVICES as readonly string[]).includes(p)) throw new Error(`--providers: ${p} is not one of cpu|webgpu|cuda`);
}
const batches = values.batches.split(',').map(Number);
const seconds = Number(values.seconds);
const parityN = Number(values['parity-crops']);

function crops(n: number, size: number, seed: number): FaceCrop[] {
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 24);
  return Array.from({ length: n }, (_, i) => {
    const rgb = Buffer.alloc(size * size * 3);
    // a smooth gradient (a face-like spread of values) plus noise, different per crop
    for (let p = 0; p < size * size; p++) {
      const g = ((p % size) * (i + 2) + Math.floor(p / size) * 3) % 256;
      for (let c = 0; c < 3; c++) rgb[p * 3 + c] = (g + rnd() - 128 + 256) % 256;
    }
    return { streamId: 'bench', frameId: i, pts: 0, trackId: `t${i}`, box: { x: 0, y: 0, width: size, height: size }, size, rgb };
  });
}

async function timeBatch(model: ExpressionModel, batch: FaceCrop[]): Promise<number> {
  for (let i = 0; i < 2; i++) await model.infer(batch);
  const times: number[] = [];
  const until = performance.now() + seconds * 1000;
  while (times.length < 3 || (performance.now() < until && times.length < 200)) {
    const t0 = performance.now();
    await model.infer(batch);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)]!;
  return (batch.length / median) * 1000;
}

interface ProviderResult {
  provider: Provider;
  loaded: boolean;
  error?: string;
  loadSeconds?: number;
  cropsPerSecond?: Record<number, number>;
  maxAbsDiffVsCpu?: number;
  top1AgreementVsCpu?: number;
}

const results: ProviderResult[] = [];
let cpuParity: Float32Array[] | undefined;
let cropSize = 0;
for (const provider of providers) {
  const t0 = performance.now();
  let model: ExpressionModel;
  try {
    model = await loadExpressionModel({ modelsDir: values.models, device: provider });
  } catch (err) {
    const line = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    results.push({ provider, loaded: false, error: line });
    console.log(`${provider}: not available: ${line}`);
    continue;
  }
  const r: ProviderResult = { provider, loaded: true, loadSeconds: (performance.now() - t0) / 1000, cropsPerSecond: {} };
  cropSize = model.cropSize;
  const parity = crops(parityN, model.cropSize, 7);
  const probs = await model.infer(parity);
  if (provider === 'cpu') cpuParity = probs;
  else if (cpuParity !== undefined) {
    let maxDiff = 0;
    let agree = 0;
    probs.forEach((p, i) => {
      const q = cpuParity![i]!;
      p.forEach((v, k) => (maxDiff = Math.max(maxDiff, Math.abs(v - q[k]!))));
      const top = (a: Float32Array) => a.indexOf(Math.max(...a));
      if (top(p) === top(q)) agree++;
    });
    r.maxAbsDiffVsCpu = maxDiff;
    r.top1AgreementVsCpu = agree / probs.length;
  }
  for (const b of batches) r.cropsPerSecond![b] = await timeBatch(model, crops(b, model.cropSize, 1000 + b));
  await model.close();
  results.push(r);
  const speeds = batches.map((b) => `b${b} ${r.cropsPerSecond![b]!.toFixed(0)}`).join(', ');
  const par = r.maxAbsDiffVsCpu === undefined ? '' : `; vs cpu: max |Δp| ${r.maxAbsDiffVsCpu.toExponential(2)}, top-1 agrees ${(100 * r.top1AgreementVsCpu!).toFixed(1)} %`;
  console.log(`${provider}: loaded in ${r.loadSeconds!.toFixed(1)} s; crops/s ${speeds}${par}`);
}

const cpu = results.find((r) => r.provider === 'cpu' && r.loaded);
console.log(`\nmodel stage, ${values.models}, crop ${cropSize} px, ${cpus().length} cores; crops/s (× cpu)`);
console.log(['provider', ...batches.map((b) => `batch ${b}`), 'max |Δp| vs cpu'].join(' | '));
for (const r of results) {
  if (!r.loaded) {
    console.log(`${r.provider} | not available: ${r.error}`);
    continue;
  }
  const cells = batches.map((b) => {
    const v = r.cropsPerSecond![b]!;
    const ratio = cpu && r !== cpu ? ` (${(v / cpu.cropsPerSecond![b]!).toFixed(1)}×)` : '';
    return `${v.toFixed(0)}${ratio}`;
  });
  console.log([r.provider, ...cells, r.maxAbsDiffVsCpu === undefined ? '-' : r.maxAbsDiffVsCpu.toExponential(2)].join(' | '));
}
if (values.json) console.log(`MODEL_STAGE_JSON ${JSON.stringify({ models: values.models, cropSize, cores: cpus().length, results })}`);
