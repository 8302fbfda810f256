// The CUDA provider for onnxruntime-node: scripts/setup-gpu.sh's logic on stand-in wheels, and how the CLI
// reports a CUDA provider that cannot run.
//
// What this covers honestly: CI has no GPU and never downloads the real provider (~1.3 GB of wheels). Where
// scripts/setup-gpu.sh has been run (a .gpu/ folder, as on the dev machine), the CLI tests below run against the
// REAL provider libraries linked into onnxruntime-node: `--device cuda` then fails because libcuda.so.1 (the
// NVIDIA driver) is absent. In a clean clone they take the same code path (onnxruntime's "Failed to load
// shared library", then the dlopen diagnosis) with the provider absent, and expect the "not installed" line.
// The setup script is exercised end to end (pip, unpacking, links, env file) on tiny stand-in wheels with
// pip's --no-index --find-links, so only the download itself is left out.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cudaProviderProblem, missingGpuDevice, onnxruntimeLibDir } from '../src/model/onnx-runtime.js';
import { runCli } from './helpers/cli.js';
import { sharedPath } from './helpers/shared.js';
import { tinyModelsDir } from './fixtures/tiny-models.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const gpuLib = join(repoRoot, '.gpu', 'lib');
const providerLinked = existsSync(join(onnxruntimeLibDir(), 'libonnxruntime_providers_cuda.so'));
const realProvider = providerLinked && existsSync(gpuLib);
const hasNvidia = missingGpuDevice('cuda') === undefined;

describe('cudaProviderProblem', () => {
  it('names a missing provider and the script that installs it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cafe-ort-'));
    expect(cudaProviderProblem(dir)).toMatch(/^not installed \(no libonnxruntime_providers_cuda\.so .*\): run scripts\/setup-gpu\.sh$/);
    rmSync(dir, { recursive: true });
  });

  it('reports the loader error of a provider file that cannot load', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cafe-ort-'));
    for (const f of ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so']) writeFileSync(join(dir, f), 'not a library');
    const why = cudaProviderProblem(dir);
    expect(why).toContain(join(dir, 'libonnxruntime_providers_cuda.so'));
    expect(why).toMatch(/ELF|too short/i);
    rmSync(dir, { recursive: true });
  });
});

describe('the CLI with --device cuda|auto on a machine without an NVIDIA GPU', () => {
  let models: string;
  const photo = sharedPath('data', 'images', 'angry.jpg'); // one face
  // As bin/cafe-stream.js does when .gpu/lib exists.
  const env = realProvider ? { LD_LIBRARY_PATH: [gpuLib, process.env['LD_LIBRARY_PATH']].filter(Boolean).join(':') } : {};
  beforeAll(async () => {
    models = await tinyModelsDir();
  });

  it.skipIf(hasNvidia)('--device cuda: exit 6 (model did not load) and one line naming the cause', async () => {
    const r = await runCli(['analyze', photo, '--device', 'cuda', '--models', models, '--quiet'], { env });
    expect(r.code).toBe(6);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^cafe-stream: error: model did not load: .* on cuda \(CUDA provider did not load: /);
    if (realProvider) expect(lines[0]).toContain('libcuda.so.1 not found: no NVIDIA driver on this machine');
    else expect(lines[0]).toMatch(/not installed .*run scripts\/setup-gpu\.sh/);
  });

  it.skipIf(hasNvidia)('--device auto: runs on cpu and says in one line why not on cuda or webgpu', async () => {
    const r = await runCli(['analyze', photo, '--device', 'auto', '--models', models], { env });
    expect(r.code).toBe(0);
    const line = r.stderr.split('\n').find((l) => l.includes('expression model'));
    expect(line).toMatch(/ on cpu \(2 model threads; not available: webgpu: no GPU device .*; cuda: no NVIDIA device \(\/dev\/nvidia\*\)\)$/);
    expect(r.stdout).toContain('"type":"face.observation"');
  });
});

describe('scripts/setup-gpu.sh on stand-in wheels (no download)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'cafe-setup-gpu-'));
  const wheels = join(tmp, 'wheels');
  const ortPkg = join(tmp, 'onnxruntime-node');
  const ortLib = join(ortPkg, 'bin', 'napi-v6', 'linux', 'x64');
  const dest = join(tmp, '.gpu');
  const run = (args: string[], version = '1.30.0') => {
    writeFileSync(join(ortPkg, 'package.json'), JSON.stringify({ name: 'onnxruntime-node', version }));
    return promisify(execFile)('bash', [join(repoRoot, 'scripts', 'setup-gpu.sh'), ...args], {
      env: { ...process.env, CAFE_GPU_DIR: dest, CAFE_GPU_ORT_PKG: ortPkg },
    }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );
  };

  beforeAll(async () => {
    mkdirSync(ortLib, { recursive: true });
    writeFileSync(join(ortLib, 'libonnxruntime.so.1'), 'stand-in');
    mkdirSync(wheels);
    // Wheels as PyPI names them, holding stand-in .so files at the paths the real ones use; the provider wheel
    // declares its CUDA libraries as extras, and cuDNN pulls cuBLAS in as a dependency, as on PyPI.
    const make = `
import sys, zipfile
out = sys.argv[1]
def wheel(fname, name, version, files, requires=()):
    di = f"{name.replace('-', '_')}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n" + "".join(f"Requires-Dist: {r}\\n" for r in requires)
    with zipfile.ZipFile(f"{out}/{fname}", "w") as z:
        for f in files: z.writestr(f, "stand-in " + f)
        z.writestr(f"{di}/METADATA", meta)
        z.writestr(f"{di}/WHEEL", "Wheel-Version: 1.0\\nRoot-Is-Purelib: false\\n")
        z.writestr(f"{di}/RECORD", "")
wheel("onnxruntime_gpu-1.30.0-cp312-cp312-manylinux_2_28_x86_64.whl", "onnxruntime-gpu", "1.30.0",
      ["onnxruntime/capi/libonnxruntime_providers_cuda.so", "onnxruntime/capi/libonnxruntime_providers_shared.so",
       "onnxruntime/capi/libonnxruntime_providers_tensorrt.so", "onnxruntime/capi/onnxruntime_pybind11_state.so"],
      ["numpy>=1.21.6", 'nvidia-cuda-runtime~=13.0; extra == "cuda"', 'nvidia-cudnn-cu13~=9.0; extra == "cudnn"',
       'sympy; extra == "symbolic"'])
wheel("nvidia_cuda_runtime-13.0.96-py3-none-manylinux_2_17_x86_64.whl", "nvidia-cuda-runtime", "13.0.96",
      ["nvidia/cu13/lib/libcudart.so.13", "nvidia/cu13/include/cuda.h"])
wheel("nvidia_cudnn_cu13-9.13.0.50-py3-none-manylinux_2_27_x86_64.whl", "nvidia-cudnn-cu13", "9.13.0.50",
      ["nvidia/cudnn/lib/libcudnn.so.9"], ["nvidia-cublas"])
wheel("nvidia_cublas-13.0.0.19-py3-none-manylinux_2_27_x86_64.whl", "nvidia-cublas", "13.0.0.19",
      ["nvidia/cu13/lib/libcublas.so.13", "nvidia/cu13/lib/libcublasLt.so.13"])
`;
    await promisify(execFile)('python3', ['-c', make, wheels]);
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('installs the provider and the libraries its extras name, links the providers beside libonnxruntime.so.1, writes the env file', async () => {
    const r = await run(['--wheels', wheels]);
    expect(r.stderr).toContain('nvidia-cuda-runtime~=13.0 nvidia-cudnn-cu13~=9.0');
    expect(r.code).toBe(0);
    const lib = join(dest, 'lib');
    for (const f of ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so', 'libcudart.so.13', 'libcudnn.so.9', 'libcublas.so.13', 'libcublasLt.so.13']) {
      expect(readFileSync(join(lib, f), 'utf8')).toMatch(/^stand-in .*\/lib(onnxruntime_providers_|cu)/);
    }
    // only shared libraries of the wanted kinds: no TensorRT provider, no Python extension, no headers
    expect(existsSync(join(lib, 'libonnxruntime_providers_tensorrt.so'))).toBe(false);
    expect(existsSync(join(lib, 'cuda.h'))).toBe(false);
    expect(existsSync(join(dest, 'wheels'))).toBe(false);
    for (const p of ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so']) {
      expect(readlinkSync(join(ortLib, p))).not.toMatch(/^\//); // relative: survives moving the checkout
      expect(realpathSync(join(ortLib, p))).toBe(realpathSync(join(lib, p)));
    }
    expect(readFileSync(join(dest, 'VERSION'), 'utf8').trim()).toBe('1.30.0');
    const env = await promisify(execFile)('bash', ['-c', `LD_LIBRARY_PATH=/x; source ${join(dest, 'env')}; echo "$LD_LIBRARY_PATH"`]);
    expect(env.stdout.trim()).toBe(`${lib}:/x`);
  });

  it('--relink restores the links after node_modules was reinstalled, and refuses a version mismatch', async () => {
    rmSync(join(ortLib, 'libonnxruntime_providers_cuda.so'));
    expect((await run(['--relink'])).code).toBe(0);
    expect(existsSync(join(ortLib, 'libonnxruntime_providers_cuda.so'))).toBe(true);
    const bad = await run(['--relink'], '1.31.0');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/holds onnxruntime-gpu 1\.30\.0, onnxruntime-node is 1\.31\.0/);
  });

  it('fails naming the version when no provider wheel of the same version exists', async () => {
    const r = await run(['--wheels', wheels], '1.29.0');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('could not get onnxruntime-gpu==1.29.0');
  });

  it('--remove takes the links and the folder away', async () => {
    expect((await run(['--remove'])).code).toBe(0);
    expect(existsSync(join(ortLib, 'libonnxruntime_providers_cuda.so'))).toBe(false);
    expect(existsSync(join(ortLib, 'libonnxruntime.so.1'))).toBe(true);
    expect(existsSync(dest)).toBe(false);
  });
});
