// onnxruntime-node sessions on the execution provider `--device` asks for.
//
// `auto` tries the GPU providers in order (webgpu, then cuda) and falls back to cpu. A provider list such as
// ['webgpu', 'cpu'] does not fall back when the GPU provider fails to initialise (checked on this version), so
// each provider gets its own attempt, and an attempt counts only if the caller's probe (a real run) succeeds.

import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ConfigError, errorLine } from '../errors.js';

export const DEVICES = ['auto', 'cpu', 'cuda', 'webgpu'] as const;
export type Device = (typeof DEVICES)[number];
export type Provider = Exclude<Device, 'auto'>;

/** GPU providers `auto` tries, best first; cpu always works and comes last. */
const AUTO_ORDER: readonly Provider[] = ['webgpu', 'cuda', 'cpu'];

export interface SessionOptions {
  device?: Device;
  /** intra-op threads per session; default: onnxruntime's (one per core). */
  threads?: number;
}

export interface ProviderAttempt {
  provider: Provider;
  /** one line: why it was not used. */
  error: string;
}

export interface ProviderChoice<T> {
  provider: Provider;
  value: T;
  /** providers tried before the one that ran, with why they failed (empty for an explicit device). */
  failed: ProviderAttempt[];
}

export function providerOrder(device: Device): readonly Provider[] {
  if (!(DEVICES as readonly string[]).includes(device)) throw new ConfigError('device', `device must be one of ${DEVICES.join('|')}, got ${device}`);
  return device === 'auto' ? AUTO_ORDER : [device];
}

export function sessionOptions(provider: Provider, threads?: number): ort.InferenceSession.SessionOptions {
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1)) {
    throw new ConfigError('threads', `threads must be an integer >= 1, got ${threads}`);
  }
  return {
    executionProviders: [provider],
    graphOptimizationLevel: 'all',
    // Only fatal errors on stderr: an expected provider failure under `auto` must not print a red error line.
    logSeverityLevel: 4,
    ...(threads === undefined ? {} : { intraOpNumThreads: threads }),
    // A pool thread spins while it waits for work: on a CPU shared with the detector and ffmpeg it burns the core
    // they need (the pipeline's stages each get a thread, not a core). Spinning only pays on a machine of its own.
    ...(provider === 'cpu' && threads !== 1 ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
    // The memory pattern is planned on a shape's first run and allocated on its second, so a fresh session paid
    // for fresh pages twice (the encoder's first two batches of 16 were ~30 % slower); the CPU arena alone
    // reuses the same memory with the steady speed unchanged (BENCHMARKS.md, 2026-12-07 (day)).
    ...(provider === 'cpu' ? { enableMemPattern: false } : {}),
  };
}

// Provider libraries that are absent (cuda without its files) log an error through the default logger before
// the session options apply; expected under `auto`, so that logger says only fatal things.
ort.env.logLevel = 'fatal';

export async function createSession(modelPath: string, provider: Provider, threads?: number): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(modelPath, sessionOptions(provider, threads));
  } catch (err) {
    // onnxruntime says only "Failed to load shared library" here; the reason (which library) goes to the
    // logger silenced above, so it is found again by loading the provider library the same way.
    const why = provider === 'cuda' && /Failed to load shared library/i.test(errorLine(err)) ? cudaProviderProblem() : undefined;
    if (why === undefined) throw err;
    throw new Error(`CUDA provider did not load: ${why}`, { cause: err });
  }
}

/** Where onnxruntime-node's libonnxruntime.so.1 lies: the folder onnxruntime loads provider libraries from. */
export function onnxruntimeLibDir(): string {
  const pkg = dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
  return join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
}

/**
 * Why the CUDA provider library in `libDir` cannot load, in a few words with the fix, or undefined when it
 * loads (the failure then lies elsewhere). Loads it with dlopen as onnxruntime does, to read dlerror's reason.
 */
export function cudaProviderProblem(libDir = onnxruntimeLibDir()): string | undefined {
  const lib = join(libDir, 'libonnxruntime_providers_cuda.so');
  if (!existsSync(lib) || !existsSync(join(libDir, 'libonnxruntime_providers_shared.so'))) {
    return `not installed (no libonnxruntime_providers_cuda.so beside libonnxruntime.so.1 in ${libDir}): run scripts/setup-gpu.sh`;
  }
  try {
    process.dlopen({ exports: {} } as NodeJS.Module, lib, constants.dlopen.RTLD_LAZY);
  } catch (err) {
    const msg = errorLine(err);
    // Loaded, but it is no Node addon: everything it needs was found.
    if (/self-register|napi_register_module/i.test(msg)) return undefined;
    const missing = /([\w.+-]+\.so[\w.]*): cannot open shared object file/.exec(msg)?.[1];
    if (missing === 'libcuda.so.1') return 'libcuda.so.1 not found: no NVIDIA driver on this machine';
    if (missing !== undefined) {
      return `${missing} not found: the CUDA libraries are not on LD_LIBRARY_PATH (use bin/cafe-stream.js or source .gpu/env; scripts/setup-gpu.sh installs them)`;
    }
    return `${lib}: ${msg.replace(/^.*?: /, '')}`;
  }
  return undefined;
}

/**
 * Runs `attempt` for each provider the device allows until one succeeds. `attempt` should create its sessions
 * AND run them once: a GPU session can be created and still fail on its first run. An explicit device that
 * fails rethrows its error; `auto` rethrows cpu's (the last) error.
 */
export async function withProvider<T>(device: Device, attempt: (provider: Provider) => Promise<T>): Promise<ProviderChoice<T>> {
  const order = providerOrder(device);
  const failed: ProviderAttempt[] = [];
  for (const provider of order) {
    const absent = device === 'auto' ? missingGpuDevice(provider) : undefined;
    if (absent !== undefined) {
      failed.push({ provider, error: absent });
      continue;
    }
    try {
      return { provider, value: await attempt(provider), failed };
    } catch (err) {
      if (provider === order[order.length - 1]) throw err;
      failed.push({ provider, error: shortReason(err) });
    }
  }
  throw new Error('unreachable: provider order is never empty');
}

/** The gist of a provider failure: onnxruntime prefixes its messages with source paths and C++ lambdas. */
function shortReason(err: unknown): string {
  const inner = err instanceof Error && err.cause !== undefined ? err.cause : err;
  const line = errorLine(inner)
    .replace(/^.*\bwas false\.\s*/, '')
    .replace(/^\/onnxruntime_src\/\S+\s*/, '');
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}

export { ort };

/**
 * Why `auto` need not try a GPU provider here, or undefined when it should. Probing WebGPU on a machine with no
 * GPU costs ~0.75 s and makes Dawn print Vulkan warnings on stderr that no option silences, so `auto` first
 * looks for the device nodes a GPU driver creates. An explicit `--device webgpu|cuda` always tries.
 */
export function missingGpuDevice(provider: Provider, dev = '/dev'): string | undefined {
  if (provider === 'cpu') return undefined;
  const nvidia = existsSync(`${dev}/nvidiactl`) || existsSync(`${dev}/nvidia0`);
  if (provider === 'cuda') return nvidia ? undefined : `no NVIDIA device (${dev}/nvidia*)`;
  const render = existsSync(`${dev}/dri`) && readdirSync(`${dev}/dri`).some((f) => f.startsWith('renderD'));
  return nvidia || render ? undefined : `no GPU device (${dev}/dri/renderD*, ${dev}/nvidia*)`;
}
