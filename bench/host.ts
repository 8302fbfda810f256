// How fast the host was while a benchmark ran. The load average only counts this machine's own runnable
// threads. On a shared virtual machine the hypervisor also takes CPU time away ("steal" in /proc/stat), and
// neighbours slow it down without any steal (shared caches, memory bandwidth): the 16-face grid has measured
// 0.6× and 1.0× realtime at the same load average. So the benches state the steal share over the measured span
// and a reference speed measured in the same process (referenceSpeed), beside the load average.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';

export interface CpuTimes {
  total: number;
  steal: number;
  idle: number;
}

/** The machine's CPU time counters now (all CPUs, jiffies); undefined where /proc/stat is not there. */
export function cpuTimes(): CpuTimes | undefined {
  let line: string;
  try {
    line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  } catch {
    return undefined;
  }
  // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest time is already in user)
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 8 || f.some((v) => !Number.isFinite(v))) return undefined;
  return { total: f.reduce((a, b) => a + b, 0), idle: f[3]! + f[4]!, steal: f[7]! };
}

/** Steal and idle as shares (0–1) of the CPU time between two readings; undefined when either is missing. */
export function cpuShares(from: CpuTimes | undefined, to: CpuTimes | undefined): { steal: number; idle: number } | undefined {
  if (from === undefined || to === undefined || to.total <= from.total) return undefined;
  const span = to.total - from.total;
  return { steal: (to.steal - from.steal) / span, idle: (to.idle - from.idle) / span };
}

/** e.g. "steal 3 %, idle 12 %" (or "steal n/a"). */
export function formatShares(s: { steal: number; idle: number } | undefined): string {
  return s === undefined ? 'steal n/a' : `steal ${(100 * s.steal).toFixed(0)} %, idle ${(100 * s.idle).toFixed(0)} %`;
}

/**
 * The host's speed on this project's heaviest kernel, measured in the same process: the shipped int8 encoder on
 * one onnxruntime thread, batch 16 of a fixed grey image, median of 3 runs after a warm-up. On the dev box it is
 * ~80 crops/s when quiet and has been 60 while neighbours were busy with no steal recorded (shared caches and
 * memory bandwidth), so a figure measured beside it can be read against the host it ran on.
 */
export async function referenceSpeed(modelsDir = join(import.meta.dirname, '..', 'models')): Promise<number> {
  const file = readdirSync(modelsDir).find((f) => f.startsWith('encoder-') && f.endsWith('-int8.onnx'));
  if (file === undefined) throw new Error(`no int8 encoder in ${modelsDir}`);
  const session = await ort.InferenceSession.create(join(modelsDir, file), { intraOpNumThreads: 1, graphOptimizationLevel: 'all' });
  // the shipped copy takes one channel since the grey input was folded (2026-12-07): ~4 % more crops/s than
  // the three-channel copy earlier references ran (BENCHMARKS.md)
  const manifest = JSON.parse(readFileSync(join(modelsDir, `${file}.json`), 'utf8')) as { inputs: { image: { channels?: number } } };
  const c = manifest.inputs.image.channels ?? 3;
  try {
    const n = 16;
    const image = new ort.Tensor('float32', new Float32Array(n * c * 224 * 224).fill(128), [n, c, 224, 224]);
    await session.run({ [session.inputNames[0]!]: image });
    const times: number[] = [];
    for (let r = 0; r < 3; r++) {
      const t = performance.now();
      await session.run({ [session.inputNames[0]!]: image });
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    return (n * 1000) / times[1]!;
  } finally {
    await session.release();
  }
}
